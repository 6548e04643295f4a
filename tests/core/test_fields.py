"""``core.fields``: a config's fields with defaults and the inline comment that gives their source
(what ``purerl agents NAME`` prints)."""

import dataclasses

import pytest

from purerl import agents
from purerl.core import fields
from purerl.loops import offline, on_policy, online


@dataclasses.dataclass(frozen=True)
class Base:
    lr: float = 3e-4  # paper, Table 1
    hidden: tuple[int, ...] = (64, 64)
    name: str = "x"  # a "#" inside: kept whole


@dataclasses.dataclass(frozen=True)
class Child(Base):
    lr: float = 1e-3  # official code, not the paper
    sizes: list = dataclasses.field(default_factory=lambda: [1, 2])  # factory default
    hidden_state: int = dataclasses.field(default=0, init=False)


@dataclasses.dataclass
class Required:
    steps: int  # no default


def test_fields_give_type_default_and_inline_source_with_the_subclass_comment_winning():
    got = {f.name: f for f in fields.config_fields(Child)}
    assert list(got) == ["lr", "hidden", "name", "sizes"]  # init fields only, in order
    assert got["lr"] == fields.Field("lr", "float", "0.001", "official code, not the paper")
    assert got["hidden"] == fields.Field("hidden", "tuple[int, ...]", "(64, 64)", "")
    assert got["name"].source == 'a "#" inside: kept whole'
    assert got["sizes"].default == "[1, 2]" and got["sizes"].source == "factory default"
    assert fields.config_fields(Required) == [
        fields.Field("steps", "int", "(required)", "no default")
    ]
    with pytest.raises(TypeError, match="not a dataclass"):
        fields.config_fields(int)


def test_table_is_aligned_with_a_header():
    lines = fields.format_fields(fields.config_fields(Base)).splitlines()
    assert lines[0].split() == ["field", "type", "default", "source"]
    assert lines[1].startswith("lr ") and lines[1].endswith("paper, Table 1")
    assert len({ln.index(ln.split()[1]) for ln in lines[:2]}) == 1  # the type column lines up


@pytest.mark.parametrize("name", sorted(agents.REGISTRY))
def test_every_default_of_every_agent_and_loop_names_its_source(name):
    """House style (docs/design.md): each default cites the paper, the official code or a reason."""
    module = agents.get(name)
    loop = {"online": online, "on_policy": on_policy, "offline": offline}[module.LOOP]
    for cls in (module.Config, loop.Config):
        missing = [f.name for f in fields.config_fields(cls) if not f.source]
        assert not missing, f"{cls.__module__}.Config fields without a source comment: {missing}"
