"""compound: a framework and runtime for compound AI systems.

    import compound
    with compound.start_run("demo"), compound.budget(tokens=10_000):
        reply = compound.get_model("smollm2-135m").generate("Name a city in France.")

Everything a user touches is importable as ``compound.X``; the names below are the public contract
(``tests/unit/test_public_api.py`` pins them). Deep paths keep working but are not the contract.
Names are imported lazily, so ``import compound`` stays fast.
"""

from __future__ import annotations

from compound._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    # settings
    "configure": "compound.core.settings",
    "context": "compound.core.settings",
    "get_settings": "compound.core.settings",
    "Settings": "compound.core.settings",
    "Price": "compound.core.settings",
    # budgets and usage
    "budget": "compound.core.budget",
    "Budget": "compound.core.budget",
    "track_usage": "compound.core.usage",
    "Usage": "compound.core.usage",
    # errors: one tree under CompoundError (see compound.core.errors)
    "CompoundError": "compound.core.errors",
    "InputError": "compound.core.errors",
    "InputTypeError": "compound.core.errors",
    "ConfigurationError": "compound.core.errors",
    "BudgetExceededError": "compound.core.errors",
    "BackendError": "compound.core.errors",
    "ToolError": "compound.core.errors",
    "OutputParseError": "compound.core.errors",
    "ContextLengthError": "compound.core.errors",
    "ModelNotInstalledError": "compound.core.errors",
    "ToolArgumentError": "compound.tools.base",
    "SQLRefused": "compound.tools.sql",
    "TableError": "compound.tables.io",
    "JobStopped": "compound.tables.jobs",
    # types
    "Message": "compound.core.types",
    "Request": "compound.core.types",
    "Completion": "compound.core.types",
    "Generation": "compound.core.types",
    # models
    "Backend": "compound.models.base",
    "get_model": "compound.models.registry",
    "register_model": "compound.models.registry",
    "ScriptedBackend": "compound.models.scripted",
    "LlamaCppBackend": "compound.models.llama_cpp",
    "OpenAIBackend": "compound.models.openai_compat",
    # typed calls and concurrency
    "call_typed": "compound.models.typed",
    "acall_typed": "compound.models.typed",
    "Typed": "compound.models.typed",
    "OutputSpec": "compound.models.typed",
    "gather": "compound.core.concurrency",
    "run_sync": "compound.core.concurrency",
    # distillation
    "Distill": "compound.optimize.distill.pipeline",
    # traces: start_run opens a run (a trace span grouping every call inside)
    "start_run": "compound.store.traces",
    "span": "compound.store.traces",
    "current_span": "compound.store.traces",
    "trace_store": "compound.store.traces",
    # programs
    "Module": "compound.program.module",
    "Predict": "compound.program.predict",
    "ChainOfThought": "compound.program.predict",
    "Signature": "compound.program.predict",
    # requirements
    "Requirement": "compound.control.requirements",
    "Validation": "compound.control.requirements",
    "Level": "compound.control.requirements",
    "MUST": "compound.control.requirements",
    "SHOULD": "compound.control.requirements",
    "Check": "compound.control.requirements",
    "Regex": "compound.control.requirements",
    "Conforms": "compound.control.requirements",
    "LLMJudge": "compound.control.requirements",
    # strategies
    "Strategy": "compound.strategies.base",
    "Candidate": "compound.strategies.base",
    "StrategyResult": "compound.strategies.base",
    "Repair": "compound.strategies.repair",
    "RejectionSampling": "compound.strategies.rejection",
    "SelfConsistency": "compound.strategies.sampling",
    "BestOfN": "compound.strategies.sampling",
    "VerifyAndSelect": "compound.strategies.sampling",
    # tools
    "tool": "compound.tools.base",
    "Tool": "compound.tools.base",
    "Policy": "compound.tools.policy",
    "guarded_call": "compound.tools.policy",
    "ToolAgent": "compound.tools.agent",
    "AgentResult": "compound.tools.agent",
    "SQLDatabase": "compound.tools.sql",
    "mcp_stdio_tools": "compound.tools.mcp",
    # retrieval
    "Document": "compound.retrieval.base",
    "Hit": "compound.retrieval.base",
    "Retrieve": "compound.retrieval.base",
    "BM25Retriever": "compound.retrieval.bm25",
    "DenseRetriever": "compound.retrieval.dense",
    # routing
    "Cascade": "compound.routing.cascade",
    "Router": "compound.routing.cascade",
    "ProxyStage": "compound.optimize.students.stage",
    "ClassifierStage": "compound.routing.cascade",
    "LLMStage": "compound.routing.cascade",
    # tables: the operators are compound.tables.classify, .extract, .impute, .map, .filter, .describe;
    # process_table runs one over a DataFrame as a (resumable) job
    "tables": "compound.tables:",
    "process_table": "compound.tables.jobs",
    "aprocess_table": "compound.tables.jobs",
    "TableOp": "compound.tables.operators",
    "TableRun": "compound.tables.jobs",
    "read_table": "compound.tables.io",
    "write_table": "compound.tables.io",
    # evaluation
    "compare": "compound.evaluate.compare",
    "returns_curve": "compound.evaluate.scale",
    "pareto_front": "compound.evaluate.report",
    # testing: compound.testing.override(models=...) and the switch that forbids real model calls
    "testing": "compound.testing:",
    # --- optimizers (teach): one line each, e.g. "KNNFewShot": "compound.optimize.knn", ---------------
    "KNNFewShot": "compound.optimize.knn",
    "BootstrapFewShot": "compound.optimize.bootstrap",
    "InstructionSearch": "compound.optimize.bootstrap",
    "JointSearch": "compound.optimize.joint",
    # serving (extra [serve])
    "create_app": "compound.serve.app",
    "BackgroundServer": "compound.serve.background",
}

#: old names: each still works and warns (DeprecationWarning) naming its new name; docs/changelog.md lists them
_DEPRECATED = {
    "run": ("compound.store.traces:start_run", "compound.start_run"),
    "run_table": ("compound.tables.jobs:process_table", "compound.process_table"),
    # a sample program: the built-in program of compound serve and the UI's Write page
    "WriteEmail": ("compound.serve.write_email:WriteEmail", "compound.serve.write_email.WriteEmail"),
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _DEPRECATED)
