"""Every example of the docs runs: each fenced block of README.md and docs/*.md says what it
is in its info string, and each kind is executed or parsed by the project's own loaders.

| info string | what the test does |
|---|---|
| ``text`` | nothing: a diagram, a folder tree, an output |
| ``bash`` | every command is parsed by its own parser: ``flair-pipeline`` by the click CLI (its ``--set`` by the config loader over params.yaml), ``dvc`` by DVC's ``parse_args`` (its ``-S`` by the config loader), ``dask`` by distributed's click commands, ``dg`` by Dagster's click CLI, ``make`` against the Makefile's targets, ``python script.py`` / ``bash script.sh`` against the options the script declares |
| ``python`` | executed |
| ``yaml domain.yaml`` | loaded and resolved (``sources/domain_spec.resolve``) in a folder holding a file for each glob; its mapping table is the doc's ``csv label-mapping`` block, loaded too |
| ``yaml domain.yaml part`` | each YAML document replaces its roles in the doc's ``domain.yaml`` example, then as above |
| ``yaml params [SECTION]`` | the section (or whole params) over params.yaml, validated by ``config_from_dict`` |
| ``csv label-mapping`` | with the doc's ``domain.yaml`` example |

A block of another kind fails the first test: tag it (GitHub renders only the first word).
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import yaml

from flair_pipeline.config import config_from_dict, load_config, read_params
from flair_pipeline.dvc_tool import DvcError, dvc_executable
from flair_pipeline.sources.domain_spec import match, resolve
from tests.conftest import REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
KINDS = {
    ("text",),
    ("bash",),
    ("python",),
    ("yaml", "domain.yaml"),
    ("yaml", "domain.yaml", "part"),
    ("yaml", "params"),
    ("csv", "label-mapping"),
}
FENCE = re.compile(r"^(\s*)```(.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its info string split in words, its text."""

    path: Path
    line: int
    tags: tuple[str, ...]
    text: str

    @property
    def kind(self) -> tuple[str, ...]:
        """The tags that say what it is (``yaml params SECTION`` is kind ``yaml params``)."""
        return self.tags[:2] if self.tags[:2] == ("yaml", "params") else self.tags

    def __str__(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def blocks(path: Path) -> Iterator[Block]:
    """The fenced blocks of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        indent, start = len(m.group(1)), i
        i += 1
        while not re.match(r"^\s*```\s*$", lines[i]):
            i += 1
        body = "\n".join(line[indent:] for line in lines[start + 1 : i])
        yield Block(path, start + 1, tuple(m.group(2).split()), body + "\n")
        i += 1


ALL = [b for p in DOCS for b in blocks(p)]


def of_kind(*kind: str) -> list[Block]:
    return [b for b in ALL if b.kind == kind]


def test_every_block_says_what_it_is() -> None:
    unknown = [f"{b} ({' '.join(b.tags) or 'no info string'})" for b in ALL if b.kind not in KINDS]
    assert not unknown, f"tag these blocks with one of {sorted(KINDS)}: {unknown}"
    assert len(ALL) > 30  # the docs were found


# --- domain.yaml ---------------------------------------------------------------------------


def _example_name(pattern: str) -> str:
    """A relative file name the glob matches: ``**/`` -> ``a/``, ``*`` and ``?`` -> ``x``."""
    return pattern.lstrip("./").replace("**/", "a/").replace("*", "x").replace("?", "x")


def _domain_folder(root: Path, spec: dict, mapping_csv: str | None) -> Path:
    """A domain folder holding `spec` as domain.yaml and one empty file for each glob."""
    date = str((spec.get("acquisition") or {}).get("date", "2022-01-01"))
    folder = root / f"D049_{date[:4]}"
    labels = spec["labels"]
    globs = [o["glob"] for o in spec["ortho"]] + [spec[r]["glob"] for r in ("dsm", "dtm")]
    for pattern in [*globs, labels["glob"]]:
        path = folder / _example_name(pattern)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
        assert path in match(folder, pattern), f"glob {pattern!r} misses {path}"
    if labels.get("mapping"):
        fields = labels.get("field", "code")
        header = ",".join([fields] if isinstance(fields, str) else fields) + ",flair\n"
        path = folder / _example_name(labels["mapping"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(mapping_csv or header)
    (folder / "domain.yaml").write_text(yaml.safe_dump(spec))
    return folder


def _doc_example(path: Path) -> tuple[dict, str | None]:
    """The doc's ``domain.yaml`` example and its ``csv label-mapping`` block (or None)."""
    (spec,) = [yaml.safe_load(b.text) for b in of_kind("yaml", "domain.yaml") if b.path == path]
    tables = [b.text for b in of_kind("csv", "label-mapping") if b.path == path]
    return spec, (tables[0] if tables else None)


@pytest.mark.parametrize("block", of_kind("yaml", "domain.yaml"), ids=str)
def test_domain_yaml_example_loads_and_resolves(block: Block, tmp_path: Path) -> None:
    spec, table = _doc_example(block.path)
    inputs = resolve(_domain_folder(tmp_path, spec, table))
    acquisition = spec.get("acquisition") or {}
    if acquisition:  # the facts are validated and kept (time as ISO HH:MM:SS)
        assert inputs.info["date"] == acquisition["date"]
        assert inputs.info["camera"] == acquisition["camera"]
        assert re.fullmatch(r"\d{2}:\d{2}:\d{2}", inputs.info["time"])
    assert [p.name for p in inputs.ortho] == [o["name"] for o in spec["ortho"]]  # type: ignore[union-attr]
    if inputs.mapping is not None and inputs.mapping.table is not None:
        table_rows = inputs.mapping.load()  # the doc's CSV has the yaml's fields and flair
        assert table_rows and all(1 <= c <= 19 for c in table_rows.values())


def test_the_ign_example_of_inputs_md_takes_flair_s_time(tmp_path: Path) -> None:
    spec, table = _doc_example(REPO / "docs" / "inputs.md")
    assert spec["acquisition"]["time"] == "10h30"  # FLAIR's own style, as the docs show it
    inputs = resolve(_domain_folder(tmp_path, spec, table))
    assert inputs.info["time"] == "10:30:00" and inputs.mapping is not None
    assert inputs.mapping.fields == ("code_cs", "code_us")


@pytest.mark.parametrize("block", of_kind("yaml", "domain.yaml", "part"), ids=str)
def test_domain_yaml_parts_resolve_in_the_example(block: Block, tmp_path: Path) -> None:
    base, _ = _doc_example(block.path)
    parts = list(yaml.safe_load_all(block.text))
    assert parts
    for i, part in enumerate(parts):
        spec = {**base, **part}
        inputs = resolve(_domain_folder(tmp_path / str(i), spec, None))
        labels = spec["labels"]
        assert inputs.labels.name == Path(_example_name(labels["glob"])).name
        assert inputs.labels_layer == labels.get("layer")
        if "ortho" in part:
            assert [p.rescale for p in inputs.ortho] == [  # type: ignore[union-attr]
                tuple(o["rescale"]) if "rescale" in o else None for o in part["ortho"]
            ]


# --- params ---------------------------------------------------------------------------------


@pytest.mark.parametrize("block", of_kind("yaml", "params"), ids=str)
def test_params_snippet_is_a_valid_config(block: Block) -> None:
    data = yaml.safe_load(block.text)
    params = read_params(REPO / "params.yaml")
    if len(block.tags) > 2:  # the content of one section
        section = block.tags[2]
        params[section] = data
        cfg = getattr(config_from_dict(params, source=str(block)), section)
        for key, value in data.items():
            assert getattr(cfg, key) is not None or value is None, key
    else:
        config_from_dict({**params, **data}, source=str(block))


# --- python ---------------------------------------------------------------------------------


@pytest.mark.parametrize("block", of_kind("python"), ids=str)
def test_python_example_runs(block: Block) -> None:
    exec(compile(block.text, str(block), "exec"), {"__name__": "__doc_example__"})


# --- commands -------------------------------------------------------------------------------


def commands(text: str) -> list[list[str]]:
    """The argv of each command of a shell block: continuations joined, comments dropped,
    ``VAR=value`` lines substituted, ``[--opt value]`` brackets (optional) removed."""
    env: dict[str, str] = {}
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        argv = [t for t in shlex.split(line, comments=True) if t != "&"]
        if len(argv) == 1 and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):
            key, _, value = argv[0].partition("=")
            env[key] = value
            continue
        argv = [re.sub(r"\$(\w+)", lambda m: env[m.group(1)], t).strip("[]") for t in argv]
        if argv:
            out.append(argv)
    return out


def _validate_overrides(sets: list[str], where: str) -> None:
    load_config(REPO / "params.yaml", sets)  # ConfigError names an unknown key or bad value


def _parse_flair(argv: list[str], where: Path) -> None:
    """Parse with the project's click CLI; create a missing path a parameter needs exist."""
    from flair_pipeline.cli import cli

    for _ in range(10):
        ctx = click.Context(cli, info_name="flair-pipeline")
        cmd: click.Command = cli
        args = list(argv)
        try:
            while isinstance(cmd, click.Group):
                name, args = args[0], args[1:]
                sub = cmd.get_command(ctx, name)
                assert sub is not None, f"no command {name!r}"
                cmd = sub
            sub_ctx = cmd.make_context(cmd.name, args, parent=ctx)
        except click.BadParameter as exc:  # a path that must exist: an example's file
            missing = re.search(r"'([^']+)' does not exist", exc.format_message())
            if missing is None:
                raise
            name = missing.group(1)
            path = where / name.lstrip("/")  # an absolute example path moves under `where`
            if Path(name).is_absolute():
                argv = [str(path) if a == name else a for a in argv]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            continue
        if sub_ctx.params.get("overrides"):
            _validate_overrides(list(sub_ctx.params["overrides"]), " ".join(argv))
        if sub_ctx.params.get("hub_fields"):  # train-flair-hub: fields of the hub config
            from flair_pipeline.cli import _hub_overrides
            from flair_pipeline.training.hub_config import load_hub_config

            load_hub_config(None, **_hub_overrides(sub_ctx.params["hub_fields"]))
        return
    raise AssertionError(f"too many missing paths for {argv}")


def _check_dg(argv: list[str]) -> None:
    """Parse with Dagster's own `dg` click CLI (sub-commands, options, their values)."""
    from dagster_dg_cli.cli import cli as dg_cli

    ctx = click.Context(dg_cli, info_name="dg")
    cmd: click.Command = dg_cli
    args = list(argv)
    while isinstance(cmd, click.Group):
        name, args = args[0], args[1:]
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"dg has no command {name!r} ({' '.join(argv)})"
        cmd = sub
    cmd.make_context(cmd.name, args, parent=ctx)


def _script_options(path: Path) -> tuple[set[str], set[str]]:
    """Options (``--x``) and sub-commands an argparse script declares, read from its AST."""
    options, subcommands = set(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            strings = [a.value for a in node.args if isinstance(a, ast.Constant)]
            if node.func.attr == "add_argument":
                options.update(s for s in strings if isinstance(s, str) and s.startswith("-"))
            elif node.func.attr == "add_parser" and strings:
                subcommands.add(str(strings[0]))
    return options, subcommands


def _check_script(script: str, args: list[str]) -> None:
    path = REPO / script
    assert path.is_file(), f"{script} does not exist"
    if path.suffix == ".sh":
        text = path.read_text()
        for a in args:
            assert not a.startswith("-") or a.split("=")[0] in text, f"{script}: no option {a}"
        return
    options, subcommands = _script_options(path)
    unknown = [a for a in args if a.startswith("--") and a.split("=")[0] not in options]
    assert not unknown, f"{script} declares no option {unknown} (it has {sorted(options)})"
    if subcommands:
        assert args and args[0] in subcommands, (
            f"{script}: sub-command {args[:1]} not in {subcommands}"
        )


def _check_make(args: list[str]) -> None:
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([A-Za-z0-9_.-]+):", makefile, re.M))
    for a in args:
        if "=" in a:
            assert re.search(rf"\b{re.escape(a.split('=')[0])}\b", makefile), f"make: no {a}"
        else:
            assert a in targets, f"make: no target {a!r}"


def _check_dask(args: list[str]) -> None:
    from distributed.cli import dask_scheduler, dask_worker

    main = {"scheduler": dask_scheduler.main, "worker": dask_worker.main}[args[0]]
    main.make_context(f"dask {args[0]}", args[1:])


DVC_PARSE = """
import json, sys
from dvc.cli import parse_args
bad = []
for argv in json.load(sys.stdin):
    try:
        parse_args(argv)
    except BaseException as exc:
        bad.append([argv, repr(exc)])
print(json.dumps(bad))
"""


def _dvc_python() -> str:
    try:
        exe = dvc_executable()
    except DvcError as exc:  # `make test` installs it: missing is a failure, not a skip
        pytest.fail(str(exc))
    first = Path(exe).read_text(errors="replace").splitlines()[0]
    assert first.startswith("#!"), f"{exe}: not a script with a Python shebang"
    return first[2:].strip()


def _check_dvc(argvs: list[list[str]]) -> None:
    """Parse every dvc command with DVC's own parser (in DVC's environment), at once."""
    for argv in argvs:
        if argv[:2] == ["exp", "run"]:
            sets = [argv[i + 1] for i, a in enumerate(argv) if a in ("-S", "--set-param")]
            _validate_overrides(sets, " ".join(argv))
    run = subprocess.run(
        [_dvc_python(), "-c", DVC_PARSE],
        input=json.dumps(argvs),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(run.stdout.splitlines()[-1]) == []


@pytest.mark.parametrize("block", of_kind("bash"), ids=str)
def test_shell_commands_parse(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # paths an option needs to exist are made here, if any
    dvc = []
    argvs = commands(block.text)
    assert argvs, f"{block}: no command"
    for argv in argvs:
        prog, args = Path(argv[0]).name, argv[1:]
        if prog == "flair-pipeline":
            _parse_flair(args, tmp_path)
        elif prog == "dvc":
            dvc.append(args)
        elif prog == "make":
            _check_make(args)
        elif prog == "dask":
            _check_dask(args)
        elif prog == "dg":
            _check_dg(args)
        elif prog in ("python", "bash"):
            _check_script(args[0], args[1:])
        elif prog.endswith(".sh"):
            _check_script(argv[0], args)
        else:
            pytest.fail(f"{block}: no parser for {prog!r}; add one to {Path(__file__).name}")
    if dvc:
        _check_dvc(dvc)
