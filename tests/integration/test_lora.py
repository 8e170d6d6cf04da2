"""LoRA adapters on the embedded small model, through the default engine."""

import compound
from compound.models.llama_cpp import LlamaCppBackend
from compound.models.registry import get_model

PROMPT = "Name three fruits."


def greedy(model) -> str:
    return model.generate(PROMPT, max_tokens=16, cache=False).text


def test_a_nonzero_adapter_changes_greedy_output_and_a_zero_one_does_not(small_model, lora_adapters):
    base = greedy(small_model)
    zero = LlamaCppBackend("smollm2-135m", n_ctx=2048, lora=[(lora_adapters["zero"], 1.0)])
    strong = LlamaCppBackend("smollm2-135m", n_ctx=2048, lora=[(lora_adapters["strong"], 1.0)])
    assert greedy(zero) == base
    assert greedy(strong) != base


def test_a_student_is_a_model_spec_with_its_own_cache_identity(small_model, lora_adapters):
    spec = f"smollm2-135m+lora={lora_adapters['strong']}"
    student = get_model(spec)
    assert isinstance(student, LlamaCppBackend) and student.lora[0].path == lora_adapters["strong"]
    assert student.model_id != small_model.model_id and student.lora[0].sha256 in student.model_id
    with compound.context(cache=True):
        base_reply = small_model.generate(PROMPT, max_tokens=16)
        student_reply = student.generate(PROMPT, max_tokens=16)
    assert not student_reply.cached  # the base's cached answer is not served to the student
    assert student_reply.text != base_reply.text


def test_an_adapter_merged_into_its_base_answers_as_the_adapter_does(small_model, lora_adapters, tmp_path):
    from compound.models.llama_cpp import resolve_model_path
    from compound.models.lora import LoraAdapter
    from compound.models.merge import merge_lora

    adapter = LoraAdapter.load(lora_adapters["strong"])
    done = merge_lora(resolve_model_path("smollm2-135m"), (adapter,), tmp_path / "merged.gguf")
    assert done["types"] == ["Q8_0"] and done["merged_tensors"] > 0
    merged = LlamaCppBackend(str(tmp_path / "merged.gguf"), n_ctx=2048)
    assert not merged.lora  # one plain model file: no adapter applied per token
    unmerged = LlamaCppBackend("smollm2-135m", n_ctx=2048, lora=[(adapter.path, 1.0)])
    assert greedy(merged) == greedy(unmerged) != greedy(small_model)
