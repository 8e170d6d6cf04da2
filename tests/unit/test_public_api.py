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
    "start_run", "span", "current_span", "trace_store",
    # programs, requirements, strategies
    "Module", "Predict", "ChainOfThought", "Signature",
    "Requirement", "Validation", "Level", "MUST", "SHOULD", "Check", "Regex", "Conforms", "LLMJudge",
    "Strategy", "Candidate", "StrategyResult", "Repair", "RejectionSampling", "SelfConsistency", "BestOfN",
    "VerifyAndSelect",
    # tools, retrieval, routing
    "tool", "Tool", "Policy", "guarded_call", "ToolAgent", "AgentResult", "SQLDatabase", "mcp_stdio_tools",
    "Document", "Hit", "Retrieve", "BM25Retriever", "DenseRetriever",
    "Cascade", "Router", "ProxyStage", "ClassifierStage", "LLMStage",
    # tables, evaluation, testing
    "tables", "process_table", "aprocess_table", "TableOp", "TableRun", "read_table", "write_table",
    "compare", "returns_curve", "pareto_front", "testing",
}  # fmt: skip

TABLE_OPERATORS = {"classify", "extract", "impute", "map", "filter", "describe"}
#: the operators over several rows (tables.multirow): new, so without old names
MULTIROW_OPERATORS = {"join", "top_k", "aggregate", "dedup"}


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
    for name in TABLE_OPERATORS | MULTIROW_OPERATORS:
        assert callable(getattr(compound.tables, name))
    assert "map" not in compound.__all__ and "filter" not in compound.__all__
    assert set(compound.tables.__all__) == TABLE_OPERATORS | MULTIROW_OPERATORS | {"run_on_ray", "RayRunner"}


def test_operators_are_exported_under_the_names_they_are_defined_by():
    from compound.tables import operators

    for name in TABLE_OPERATORS:
        assert getattr(compound.tables, name).__name__ == name
        assert operators.OPERATORS[name] is getattr(operators, name)
    for name in MULTIROW_OPERATORS:
        assert getattr(compound.tables, name).__name__ == name


#: every old name: (how it is reached, the new name the warning must name, the object it must still be)
OLD_NAMES = [
    (lambda: compound.run, "compound.start_run", lambda: compound.start_run),
    (lambda: compound.run_table, "compound.process_table", lambda: compound.process_table),
    (lambda: compound.WriteEmail, "compound.serve.write_email.WriteEmail", None),
    (lambda: compound.tables.process, "compound.process_table", lambda: compound.process_table),
    (lambda: compound.tables.aprocess, "compound.aprocess_table", lambda: compound.aprocess_table),
    (lambda: compound.tables.read_table, "compound.read_table", lambda: compound.read_table),
    (lambda: compound.tables.write_table, "compound.write_table", lambda: compound.write_table),
    (lambda: compound.tables.TableOp, "compound.TableOp", lambda: compound.TableOp),
    (lambda: compound.tables.TableRun, "compound.TableRun", lambda: compound.TableRun),
    *[
        (lambda n=n: getattr(__import__("compound.tables.operators").tables.operators, f"{n}_op"), f"compound.tables.{n}",
         lambda n=n: getattr(compound.tables, n))
        for n in sorted(TABLE_OPERATORS)
    ],
    (lambda: __import__("compound.tables.jobs").tables.jobs.run_table, "compound.process_table", lambda: compound.process_table),
]  # fmt: skip


@pytest.mark.parametrize("old, new, same", OLD_NAMES, ids=[n for _, n, _ in OLD_NAMES])
def test_old_names_still_work_and_warn_naming_the_new_name_and_the_removal(old, new, same):
    with pytest.warns(DeprecationWarning, match=rf"deprecated and will be removed in compound 0\.3\.0; use {new}$"):
        value = old()
    if same is not None:
        assert value is same()
    with pytest.warns(DeprecationWarning):  # every use warns, not only the first
        old()


def test_old_names_are_not_in_the_public_listing():
    assert {"run", "run_table", "WriteEmail"}.isdisjoint(compound.__all__)
    assert {"run", "run_table", "WriteEmail"}.isdisjoint(dir(compound))


def test_the_changelog_lists_every_old_name():
    from pathlib import Path

    changelog = (Path(__file__).parents[2] / "docs" / "changelog.md").read_text()
    for _, new, _ in OLD_NAMES:
        assert f"`{new}`" in changelog, new
    for old in ("compound.run", "compound.run_table", "compound.WriteEmail", "compound.tables.process"):
        assert f"`{old}`" in changelog, old


def test_predict_run_is_the_old_name_of_result():
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
