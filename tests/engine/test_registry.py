from dataclasses import dataclass

import pytest

from leanfit.engine import registry
from leanfit.engine.errors import ConfigError, UnknownNameError


def test_unknown_method_lists_close_matches():
    with pytest.raises(UnknownNameError) as e:
        registry.get("adapters", "lorra")
    assert "Did you mean 'lora'" in str(e.value)
    assert "Valid adapters method names:" in str(e.value)


def test_unknown_axis():
    with pytest.raises(UnknownNameError, match="unknown axis 'adapter'.*Did you mean 'adapters'"):
        registry.get("adapter", "lora")


def test_duplicate_registration_is_an_error():
    @dataclass(frozen=True)
    class C:
        pass

    with pytest.raises(ConfigError, match="registered twice"):
        registry.register("adapters", "full", C, "dup")(lambda c: c)


def test_names_must_be_lower_case():
    @dataclass(frozen=True)
    class C:
        pass

    with pytest.raises(ConfigError, match="lower-case"):
        registry.register("adapters", "MyAdapter", C, "x")


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ConfigError, match=r"adapters.lora: unknown parameter\(s\) 'rank'. Valid parameters: .*\br\b"):
        registry.get("adapters", "lora").make_config({"rank": 4})


def test_bad_value_names_field_value_and_rule():
    with pytest.raises(ConfigError, match=r"adapters.lora: r must be an integer ≥ 1, but got 0"):
        registry.get("adapters", "lora").make_config({"r": 0})


# registered optimizers that pytorch-optimizer does not list: ours (no maintained library has them)
OURS_ONLY = {"frugal", "mezo", "sania"}
# pytorch-optimizer optimizers allowed to be missing from the registry, each with its reason. None today: an entry
# here must say why (the registration loop skips a library entry that fails to load, so a silent gap is possible).
NOT_REGISTERED: dict[str, str] = {}


def test_every_pytorch_optimizer_is_registered_by_name():
    from pytorch_optimizer import get_supported_optimizers

    entries = {e.name: e for e in registry.list_methods("optim")}
    lib = {n.lower() for n in get_supported_optimizers()}
    assert len(lib) == 128  # README: "All 128 pytorch-optimizer 4.x optimizers are available by name"
    missing = lib - set(entries)
    assert missing == set(NOT_REGISTERED), f"library optimizers missing from the registry: {sorted(missing)}"
    assert set(entries) - lib == OURS_ONLY
    for name in lib - set(NOT_REGISTERED):
        e = entries[name]
        # torch's SGD / AdamW win over the library's entries of the same name; the rest come from the library
        assert e.capabilities.via == ("" if name in ("sgd", "adamw") else "pytorch-optimizer"), name
    # README: eleven library optimizers need something the Trainer does not give; each says why
    unsupported = {n: e.capabilities.unsupported for n, e in entries.items() if e.capabilities.unsupported}
    assert len(unsupported) == 11 and set(unsupported) <= lib and all(len(r) > 20 for r in unsupported.values())


def test_library_optimizer_params_validated_against_signature():
    e = registry.get("optim", "adan")
    cfg = e.make_config({"lr": 0.01, "weight_decay": 0.02})
    assert cfg.lr == 0.01 and tuple(cfg.betas) == (0.98, 0.92, 0.99)
    with pytest.raises(ConfigError, match=r"optim.adan: unknown parameter\(s\) 'momentum'"):
        e.make_config({"momentum": 0.9})
    with pytest.raises(ConfigError, match=r"lr must be > 0, but got -1"):
        e.make_config({"lr": -1})


def test_library_optimizers_registered_only_when_a_name_is_not_ours():
    """issue 17: a recipe with adamw must not pay for importing pytorch-optimizer (seconds); a library name, a
    typo's suggestions and listing still see every entry."""
    import subprocess
    import sys

    code = ("import sys; from leanfit.engine import registry\n"
            "assert registry.get('optim', 'adamw').capabilities.via == ''\n"
            "assert 'pytorch_optimizer' not in sys.modules, 'imported for adamw'\n"
            "assert registry.get('optim', 'adan').capabilities.via == 'pytorch-optimizer'\n"
            "assert registry.get('optim', 'sgd').capabilities.via == ''\n"
            "assert len(registry.list_methods('optim')) > 100\n")
    subprocess.run([sys.executable, "-c", code], check=True)
