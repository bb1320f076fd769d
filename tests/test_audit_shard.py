"""The audit's pieces on their own: the cut (shard.py), the collapsed tree of the map, and the
narrow hooks it added to the reviewer (plan_pack, frame) and the packer (fit_inputs_of)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from conftest import MakeRepo
from wholerepo.audit import shard
from wholerepo.audit.repomap import collapsed_tree
from wholerepo.fit.graph import Graph
from wholerepo.packer import pack, settings_for
from wholerepo.packer.run import fit_inputs_of
from wholerepo.reviewer.plan import PromptTooLargeError, Window, frame, plan_pack


def _graph(paths: Sequence[str], imports: dict[str, list[str]]) -> Graph:
    g = Graph(sorted(paths))
    for src, targets in imports.items():
        for dst in targets:
            g.add(src, dst, 1.0)
    return g


def _sum_fits(sizes: dict[str, int], room: int):  # type: ignore[no-untyped-def]
    return lambda paths: sum(sizes[p] for p in paths) <= room


def test_cut_keeps_tests_with_their_module_and_every_file_once() -> None:
    sizes = {f"src/pkg/m{i}.py": 30 for i in range(6)}
    sizes |= {f"tests/test_m{i}.py": 10 for i in range(6)}
    sizes["big.bin.txt"] = 500
    graph = _graph(sizes, {f"tests/test_m{i}.py": [f"src/pkg/m{i}.py"] for i in range(6)})
    cut = shard.cut(sizes, 130, _sum_fits(sizes, 130), graph)  # an atom: at most a third
    assert cut.too_large == ("big.bin.txt",)
    listed = [p for s in cut.shards for p in s]
    assert sorted(listed) == sorted(p for p in sizes if p != "big.bin.txt")
    where = {p: i for i, s in enumerate(cut.shards) for p in s}
    for i in range(6):
        assert where[f"tests/test_m{i}.py"] == where[f"src/pkg/m{i}.py"]
    assert all(sum(sizes[p] for p in s) <= 130 for s in cut.shards)
    assert shard.cut(sizes, 130, _sum_fits(sizes, 130), graph) == cut  # deterministic


def test_cut_keeps_a_test_with_the_module_its_name_names_though_it_imports_only_a_fixture() -> None:
    # pytest's own layout: testing/test_x.py reaches src/_pytest/x.py through the pytester
    # fixture, and the modules import each other, so import clusters alone would split them.
    mods = [f"m{i}" for i in range(8)]
    sizes = {f"src/pkg/{m}.py": 20 for m in mods} | {"src/pkg/fixture.py": 20}
    sizes |= {f"testing/test_{m}.py": 15 for m in mods}  # with its module: an atom (a third)
    imports = {f"src/pkg/{m}.py": [f"src/pkg/{n}.py" for n in mods if n != m] for m in mods}
    imports |= {f"testing/test_{m}.py": ["src/pkg/fixture.py"] for m in mods}
    graph = _graph(sizes, imports)
    cut = shard.cut(sizes, 120, _sum_fits(sizes, 120), graph)
    where = {p: i for i, s in enumerate(cut.shards) for p in s}
    assert sorted(where) == sorted(sizes)
    for m in mods:
        assert where[f"testing/test_{m}.py"] == where[f"src/pkg/{m}.py"], cut.shards
    assert all(sum(sizes[p] for p in s) <= 120 for s in cut.shards)


def test_cut_fills_shards_and_keeps_directories_whole_where_it_can() -> None:
    sizes = {f"a/{i}.py": 20 for i in range(4)} | {f"b/{i}.py": 20 for i in range(4)}
    sizes |= {f"c/{i}.py": 35 for i in range(2)}
    cut = shard.cut(sizes, 100, _sum_fits(sizes, 100))
    assert set(cut.shards[0]) >= {f"a/{i}.py" for i in range(4)}
    fills = [sum(sizes[p] for p in s) / 100 for s in cut.shards]
    assert all(f >= 0.9 for f in fills[:-1]), fills


def test_cut_keeps_a_go_test_with_the_file_it_tests_in_the_same_package() -> None:
    # One Go package: every file of the directory shares names, none imports another.
    names = ["args", "command", "completions", "flag_groups"]
    sizes = {f"{n}.go": 20 for n in names} | {f"{n}_test.go": 15 for n in names}
    sizes |= {"cobra.go": 20}
    edges = {f"{a}.go": [f"{b}.go" for b in names if b != a] for a in names}
    graph = Graph(sorted(sizes))
    for src, targets in edges.items():
        for dst in targets:
            graph.add(src, dst, 0.25, imported=False)  # shared names, below TIGHT
    cut = shard.cut(sizes, 120, _sum_fits(sizes, 120), graph)  # a pair: at most a third
    where = {p: i for i, s in enumerate(cut.shards) for p in s}
    assert sorted(where) == sorted(sizes)
    for n in names:
        assert where[f"{n}_test.go"] == where[f"{n}.go"], cut.shards


def test_a_small_last_shard_joins_an_earlier_one_with_room_for_it() -> None:
    sizes = {"a/0.py": 45, "a/1.py": 45, "b/0.py": 48, "b/1.py": 48, "c/x.py": 5}
    cut = shard.cut(sizes, 100, _sum_fits(sizes, 100))
    # The walk closes a/ at 90 and b/ at 96; c/ would be a third request of 5 tokens.
    assert cut.shards == (("a/0.py", "a/1.py", "c/x.py"), ("b/0.py", "b/1.py"))
    assert shard.cut(sizes, 99, _sum_fits(sizes, 99)).shards == cut.shards
    # No shard with room for it: it stays a shard of its own.
    larger = sizes | {"c/x.py": 11}
    assert len(shard.cut(larger, 100, _sum_fits(larger, 100)).shards) == 3


def test_collapsed_tree_counts_the_folded_directories() -> None:
    paths = ["README.md", "pkg/a/x.py", "pkg/a/y.py", "pkg/b.py", "z/deep/er/f.txt"]
    assert collapsed_tree(paths, 0) == "README.md\npkg/ (3 files)\nz/ (1 file)\n"
    assert collapsed_tree(paths, 1) == "README.md\npkg/\n  a/ (2 files)\n  b.py\nz/\n  deep/ (1 file)\n"


def test_plan_pack_counts_the_head_and_refuses_more_than_the_budget(make_repo: MakeRepo) -> None:
    root = make_repo({"a.py": "x = 1\n", "b.py": "y = 2\n"})
    settings = settings_for(root, {"budget": 5000})
    packed = pack(root, settings)
    f = frame(settings, Window(100_000, "test"), note="One of several requests.")
    assert f.budget == 5000 and "One of several requests." in f.instructions.text
    p = plan_pack(packed, f, model="m", head="<map>\n</map>\n", head_tokens=7, context={"c.py": "z\n"})
    assert p.user.startswith("<untrusted_repository>\n<map>\n</map>\n" + packed.text)
    assert p.prompt_tokens == f.fixed + 7 + packed.prompt_tokens
    assert p.verifiable == {"c.py": "z\n"} and set(p.files) == {"a.py", "b.py"}
    with pytest.raises(PromptTooLargeError):
        plan_pack(packed, f, model="m", head="<map>\n", head_tokens=5000)


def test_fit_inputs_of_a_pack_share_the_packers_keys(make_repo: MakeRepo, tmp_path: Path) -> None:
    root = make_repo({"a.py": "import b\n", "b.py": "def f():\n    return 1\n", "bin.dat": b"\0\1"})
    packed = pack(root, settings_for(root, {}), keep_file_text=False)
    inputs = fit_inputs_of(packed)
    assert [i.path for i in inputs] == ["a.py", "b.py"]
    again = fit_inputs_of(pack(root, settings_for(root, {}), keep_file_text=False))
    assert inputs == again
    assert all(i.tokens > 0 and len(i.key) == 40 for i in inputs)
