"""Models: registry shapes, causal attention, meta-device counts, import factories, initFrom."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from trainer_jobs import make_job

from kubetrain.api.model import GPTArgs, ModelSpec
from kubetrain.data.shapes import DataShapes
from kubetrain.errors import InvalidJob
from kubetrain.models.gpt import GPT
from kubetrain.models.registry import build_model, count_parameters, load_initial_weights


@pytest.mark.parametrize("spec,shapes,x,out", [
    ({"type": "linear"}, DataShapes("regression", (5,), 1), torch.randn(2, 5), (2, 1)),
    ({"type": "mlp", "mlp": {"hidden": [8, 8], "norm": "layer"}},
     DataShapes("classification", (5,), 3), torch.randn(2, 5), (2, 3)),
    ({"type": "cnn", "cnn": {"channels": [4, 8]}}, DataShapes("classification", (1, 8, 8), 3),
     torch.randn(2, 1, 8, 8), (2, 3)),
    ({"type": "gpt", "gpt": {"layers": 1, "heads": 2, "width": 16, "context": 8}},
     DataShapes("lm", (8,), 11, 8), torch.randint(0, 11, (2, 8)), (2, 8, 11)),
])
def test_registry_models_produce_the_right_shapes(spec: dict, shapes: DataShapes,
                                                  x: torch.Tensor, out: tuple) -> None:
    model = build_model(ModelSpec.model_validate(spec), shapes)
    assert model(x).shape == out


def test_gpt_is_causal_and_ties_weights() -> None:
    torch.manual_seed(0)
    m = GPT(GPTArgs(layers=2, heads=2, width=16, context=8), 13).eval()
    x = torch.randint(0, 13, (1, 8))
    y = x.clone()
    y[0, 5:] = (y[0, 5:] + 1) % 13  # change the future only
    assert torch.allclose(m(x)[0, :5], m(y)[0, :5], atol=1e-6)
    assert not torch.allclose(m(x)[0, 5:], m(y)[0, 5:])
    assert m.lm_head.weight is m.transformer.wte.weight


def test_count_parameters_on_meta_matches_a_real_model() -> None:
    spec = make_job({"model": {"type": "gpt", "mlp": None,
                               "gpt": {"layers": 2, "heads": 2, "width": 32, "context": 16,
                                       "vocabSize": 50}},
                     "dataset": {"type": "synthetic", "synthetic": {"task": "lm"}}}).spec
    real = GPT(spec.model.gpt, 50)
    unique = {id(p): p.numel() for p in real.parameters()}
    assert count_parameters(spec) == sum(unique.values())
    mlp = make_job().spec  # synthetic: 8 features, 3 classes, hidden [16]
    assert count_parameters(mlp) == 8 * 16 + 16 + 16 * 3 + 3


def factory(width: int, num_outputs: int, input_shape: tuple[int, ...]) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(input_shape[0], width),
                         nn.Linear(width, num_outputs))


def test_import_factory_gets_args_and_shapes() -> None:
    m = ModelSpec.model_validate({"import": f"{__name__}:factory", "args": {"width": 7}})
    model = build_model(m, DataShapes("classification", (4,), 2))
    assert model[1].out_features == 7 and model[2].out_features == 2
    with pytest.raises(InvalidJob, match="no_such"):
        build_model(ModelSpec.model_validate({"import": "no_such.module:f"}),
                    DataShapes("regression", (1,), 1))


def test_init_from_loads_and_freezes(tmp_path: Path) -> None:
    shapes = DataShapes("classification", (4,), 2)
    src = build_model(ModelSpec.model_validate({"type": "mlp", "mlp": {"hidden": [8]}}), shapes)
    (tmp_path / "model").mkdir()
    torch.save(src.state_dict(), tmp_path / "model" / "model.pt")
    spec = ModelSpec.model_validate({"type": "mlp", "mlp": {"hidden": [8]},
                                     "initFrom": {"path": str(tmp_path), "freeze": ["1.*"]}})
    dst = build_model(spec, shapes)
    load_initial_weights(dst, spec)
    assert torch.equal(dst[1].weight, src[1].weight)
    assert not dst[1].weight.requires_grad and dst[3].weight.requires_grad
    init = spec.init_from.model_copy(update={"freeze": ["x*"]})
    bad = spec.model_copy(update={"init_from": init})
    with pytest.raises(InvalidJob, match="matches no parameter"):
        load_initial_weights(build_model(bad, shapes), bad)


def test_gpt_needs_token_data() -> None:
    with pytest.raises(InvalidJob, match="needs token data"):
        build_model(ModelSpec.model_validate({"type": "gpt"}), DataShapes("regression", (3,), 1))
