"""The public API is flat: these names, importable as ``compound.X``, are the contract."""

import subprocess
import sys

import pytest

import compound

PUBLIC = {
    # settings, budgets, usage
    "configure", "context", "get_settings", "Settings", "Price", "budget", "Budget", "track_usage", "Usage",
    # errors
    "CompoundError", "InputError", "InputTypeError", "ConfigurationError", "BudgetExceededError", "BackendError",
    "ToolError", "OutputParseError", "ContextLengthError", "ModelNotInstalledError", "ToolArgumentError", "SQLRefused",
    "TableError",
    "JobStopped",
    # types and models
    "Message", "Request", "Completion", "Generation", "Backend", "get_model", "register_model",
    "ScriptedBackend", "LlamaCppBackend", "OpenAIBackend",
    # typed calls, concurrency, traces
    "call_typed", "acall_typed", "Typed", "OutputSpec", "gather", "run_sync",
    "start_run", "run", "span", "current_span", "trace_store",
    # programs, requirements, strategies
    "Module", "Predict", "ChainOfThought", "Signature",
    "Requirement", "Validation", "Level", "MUST", "SHOULD", "Check", "Regex", "Conforms", "LLMJudge",
    "Strategy", "Candidate", "StrategyResult", "Repair", "RejectionSampling", "SelfConsistency", "BestOfN",
    "VerifyAndSelect",
    # tools, retrieval, routing
    "tool", "Tool", "Policy", "guarded_call", "ToolAgent", "AgentResult", "SQLDatabase", "mcp_stdio_tools",
    "Document", "Hit", "Retrieve", "BM25Retriever", "DenseRetriever",
    "Cascade", "Router", "ProxyStage", "LLMStage",
    # tables, evaluation, testing
    "tables", "process_table", "aprocess_table", "run_table", "TableOp", "TableRun", "read_table", "write_table",
    "compare", "returns_curve", "pareto_front", "testing",
}  # fmt: skip

TABLE_OPERATORS = {"classify", "extract", "impute", "map", "filter", "describe"}


def test_every_public_name_is_exported():
    missing = PUBLIC - set(compound.__all__)
    assert not missing, f"public names missing from compound.__all__: {sorted(missing)}"


@pytest.mark.parametrize("name", sorted(compound.__all__))
def test_every_exported_name_resolves(name):
    assert getattr(compound, name) is not None


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        compound.Nope  # noqa: B018


def test_table_operators_live_under_compound_tables_without_shadowing_builtins():
    for name in TABLE_OPERATORS:
        assert callable(getattr(compound.tables, name))
    assert "map" not in compound.__all__ and "filter" not in compound.__all__
    assert compound.tables.process is compound.process_table


def test_old_names_are_aliases_of_the_new_ones():
    assert compound.run is compound.start_run
    assert compound.run_table is compound.process_table
    assert compound.Predict.run is compound.Predict.result


def test_every_deliberate_error_is_a_compound_error_and_input_errors_stay_value_errors():
    for name in compound.__all__:
        value = getattr(compound, name)
        if isinstance(value, type) and issubclass(value, BaseException):
            assert issubclass(value, compound.CompoundError), name
    for err in (compound.ConfigurationError, compound.ToolArgumentError, compound.SQLRefused, compound.TableError):
        assert issubclass(err, compound.InputError) and issubclass(err, ValueError)
    assert issubclass(compound.InputTypeError, TypeError)


def test_bad_user_input_raises_input_errors():
    with pytest.raises(compound.InputError, match="n must be at least 1"):
        compound.SelfConsistency(0)
    with pytest.raises(compound.InputTypeError, match="unknown generation parameter"):
        compound.ScriptedBackend(["a"]).generate("q", max_token=5)


def test_import_compound_stays_light():
    """``import compound`` loads none of the heavy parts (pydantic, the openai client, pandas), nor even
    ``typing`` and ``re`` (about 10 ms between them)."""
    heavy = "{'pydantic', 'openai', 'pandas', 'numpy', 'sqlglot', 'typing', 're'}"
    code = (
        "import sys; before = set(sys.modules); import compound; "
        f"print(' '.join(sorted(m for m in set(sys.modules) - before if m.split('.')[0] in {heavy})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
