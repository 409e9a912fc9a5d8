"""poly1_causal_lm_loss with Hugging Face transformers: as a model's loss_function and as Trainer's compute_loss_func."""

from __future__ import annotations

import functools

# The nox torch session installs the [hf] extra (transformers, accelerate): these tests never skip.
import accelerate  # noqa: F401  (Trainer needs it)
import pytest
import torch
import transformers

from polyloss_torch import poly1_causal_lm_loss, poly1_cross_entropy

VOCAB = 128


def _tiny_llama() -> torch.nn.Module:
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(config)


def _batch(size: int = 4, length: int = 10, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(0, VOCAB, (size, length), generator=g)
    labels = input_ids.clone()
    labels[0, -3:] = -100  # padding of different lengths: the token counts differ per example
    labels[2, -6:] = -100
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}


def test_matches_transformers_causal_lm_loss_semantics() -> None:
    from transformers.loss.loss_utils import ForCausalLMLoss

    logits = torch.randn(3, 7, VOCAB, dtype=torch.bfloat16)
    labels = torch.randint(0, VOCAB, (3, 7))
    labels[1, :4] = -100
    for extra in ({}, {"num_items_in_batch": torch.tensor(11)}, {"shift_labels": labels.roll(-1, 1)}):
        want = ForCausalLMLoss(logits, labels, VOCAB, **extra)
        got = poly1_causal_lm_loss(logits, labels, VOCAB, epsilon=0.0, **extra)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    shifted = labels[:, 1:].reshape(-1)
    expected = poly1_cross_entropy(logits[:, :-1].float().reshape(-1, VOCAB), shifted, epsilon=2.0, reduction="sum") / 5
    torch.testing.assert_close(poly1_causal_lm_loss(logits, labels, num_items_in_batch=5, epsilon=2.0), expected)


def test_as_model_loss_function_epsilon_zero_is_the_builtin_loss() -> None:
    model = _tiny_llama()
    batch = _batch()
    builtin = model(**batch).loss
    model.loss_function = functools.partial(poly1_causal_lm_loss, epsilon=0.0)
    torch.testing.assert_close(model(**batch).loss, builtin, rtol=1e-6, atol=1e-6)
    model.loss_function = functools.partial(poly1_causal_lm_loss, epsilon=1.0)
    assert model(**batch).loss > builtin  # the Poly-1 term is positive


def test_bad_arguments() -> None:
    with pytest.raises(TypeError, match=r"logits must be a torch\.Tensor or a model output"):
        poly1_causal_lm_loss([1.0], torch.tensor([1]))
    with pytest.raises(ValueError, match="labels and shift_labels are both None"):
        poly1_causal_lm_loss(torch.randn(1, 3, 5), None)
    with pytest.raises(ValueError, match="epsilon must be a finite number >= -1"):
        poly1_causal_lm_loss(torch.randn(1, 3, 5), torch.tensor([[1, 2, 3]]), epsilon=-3.0)
    with pytest.raises(ValueError, match="target contains class index 7"):
        poly1_causal_lm_loss(torch.randn(1, 3, 5), torch.tensor([[1, 2, 7]]))


def _trainer_grads(tmp_path, batch_size: int, accumulation: int, loss_hook: str) -> list[torch.Tensor]:
    """Gradients after one optimisation step of Trainer (lr = 0, so the step changes nothing)."""
    from torch.utils.data import Dataset

    batch = _batch()

    class Examples(Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {k: v[i] for k, v in batch.items()}

    model = _tiny_llama()
    kwargs = {}
    if loss_hook == "loss_function":
        model.loss_function = functools.partial(poly1_causal_lm_loss, epsilon=2.0)
    else:
        kwargs["compute_loss_func"] = functools.partial(poly1_causal_lm_loss, epsilon=2.0)
    grads: list[torch.Tensor] = []

    class KeepGrads(transformers.TrainerCallback):
        def on_pre_optimizer_step(self, args, state, control, **_):
            grads.extend(p.grad.detach().clone() for p in model.parameters())

    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / f"{loss_hook}-{batch_size}"),
        per_device_train_batch_size=batch_size,
        gradient_accumulation_steps=accumulation,
        max_steps=1,
        learning_rate=0.0,
        max_grad_norm=0.0,  # no clipping: the gradients are compared as computed
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Examples(), callbacks=[KeepGrads()], **kwargs)
    trainer.train()
    return grads


@pytest.mark.parametrize("loss_hook", ["loss_function", "compute_loss_func"])
def test_trainer_gradient_accumulation_equals_one_large_batch(tmp_path, loss_hook: str) -> None:
    """4 micro-batches of 1 (examples with different token counts) give the gradient of one batch of 4."""
    one_batch = _trainer_grads(tmp_path, batch_size=4, accumulation=1, loss_hook=loss_hook)
    accumulated = _trainer_grads(tmp_path, batch_size=1, accumulation=4, loss_hook=loss_hook)
    assert one_batch
    assert len(one_batch) == len(accumulated)
    for g_batch, g_acc in zip(one_batch, accumulated, strict=True):
        torch.testing.assert_close(g_acc, g_batch, rtol=1e-4, atol=1e-6)


def test_trainer_gradient_is_the_poly1_gradient(tmp_path) -> None:
    """The gradient Trainer steps with is that of the mean Poly-1 loss over the batch's labelled tokens."""
    got = _trainer_grads(tmp_path, batch_size=4, accumulation=1, loss_hook="compute_loss_func")
    model = _tiny_llama()
    batch = _batch()
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    labels = batch["labels"][:, 1:].reshape(-1)
    poly1_cross_entropy(logits[:, :-1].reshape(-1, VOCAB), labels, epsilon=2.0).backward()
    for g_trainer, p in zip(got, model.parameters(), strict=True):
        torch.testing.assert_close(g_trainer, p.grad, rtol=1e-4, atol=1e-6)
