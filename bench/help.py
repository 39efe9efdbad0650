"""What `python -m bench` offers, read from the configs: the `--help` listing and a did-you-mean
check for misspelled group options (`model=lstn`), run before Hydra composes anything.

The configs are the registry, so help is generated from them: a `description:` key in a group
option's yaml (models, datasets), else the first comment line of the file.
"""

from __future__ import annotations

import difflib
import re
import sys
from pathlib import Path

import yaml
from omegaconf import OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

USAGE = """\
recbench: datasets x models x seeds, trained under Lightning, ranked by one full-ranking evaluator.

  python -m bench [group=option ...] [key=value ...]      one job (defaults marked *)
  python -m bench model=pop,mf,lstm seed=0,1 -m           a sweep: one job per combination
  python -m bench --cfg job model=lstm                    print the composed config, run nothing
  python -m bench.leaderboard [results_dir]               reprint the leaderboard views
  python -m bench.recommend run=<run id> user=<id> k=10   recommend with a trained model

Guides: docs/add-a-model.md, docs/add-a-dataset.md, docs/reading-a-leaderboard.md,
docs/scaling-out.md, docs/protocols-and-metrics.md"""


def describe(path: Path) -> str:
    """One line for a config file: its `description:` value, else its first comment line."""
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("description"), str):
        return " ".join(data["description"].split())
    block: list[str] = []  # the first run of comment lines, up to its first sentence
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#") and not stripped.startswith("# @package"):
            block.append(stripped.lstrip("#").strip())
        elif block:
            break
    joined = " ".join(block)
    end = joined.find(". ")
    return joined[: end + 1] if end >= 0 else joined


def group_options(conf_dir: Path = CONF_DIR) -> dict[str, dict[str, str]]:
    """{group: {option: description}} for every config group folder, plus the project's own
    options for Hydra's groups (`hydra/launcher`, ...; not the help template)."""
    folders = sorted(p for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra")
    hydra_dir = conf_dir / "hydra"
    if hydra_dir.is_dir():
        folders += sorted(p for p in hydra_dir.iterdir() if p.is_dir() and p.name != "help")
    groups = {}
    for folder in folders:
        options = {f.stem: describe(f) for f in sorted(folder.glob("*.yaml"))}
        if options or folder.parent == conf_dir:
            groups[folder.relative_to(conf_dir).as_posix()] = options
    return groups


def default_choices(conf_dir: Path = CONF_DIR) -> dict[str, str]:
    """The option each group gets when none is given, from config.yaml's defaults list."""
    data = yaml.safe_load((conf_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    out = {}
    for entry in data.get("defaults", []):
        if isinstance(entry, dict):
            for key, value in entry.items():
                if isinstance(value, str) and not key.startswith("override"):
                    out[key.split("@")[0].lstrip("/")] = value
    return out


def groups_text(conf_dir: Path = CONF_DIR) -> str:
    """The config groups section of `--help`: every option with its one-line description."""
    defaults = default_choices(conf_dir)
    groups = group_options(conf_dir)
    for group in ("hydra/launcher", "hydra/sweeper"):  # scaling out: the installed engines
        plugins = {name: "(installed Hydra plugin)" for name in sorted(_plugin_options(group))
                   if name not in groups.get(group, {})}
        if plugins:
            groups[group] = {**groups.get(group, {}), **plugins}
    width = max((len(o) for options in groups.values() for o in options), default=0) + 2
    lines = []
    for group, options in groups.items():
        lines.append(f"{group}:" + ("" if options else "  (none yet)"))
        for option, description in options.items():
            mark = "*" if defaults.get(group) == option else " "
            lines.append(f"  {mark} {option:<{width}}{description}".rstrip())
    return "\n".join(lines)


def help_template_text() -> str:
    # Hydra fills its help template with string.Template: a literal `$` must be doubled.
    return (USAGE + "\n\n== Config groups (group=option) ==\n" + groups_text()).replace("$", "$$")


def register_help() -> None:
    """The `${bench_help:}` resolver used by conf/hydra/help/bench.yaml."""
    OmegaConf.register_new_resolver("bench_help", help_template_text, replace=True)


_FUNCTION = re.compile(r"^(\w+)\((.*)\)$")


def _choices(value: str) -> list[str] | None:
    """Option names in an override value (`lstm`, `pop,mf`, `choice(pop,mf)`); None when the
    value is something this check cannot read (interpolation, range, glob, a list)."""
    value = value.strip()
    match = _FUNCTION.match(value)
    if match:
        if match.group(1) != "choice":
            return None
        value = match.group(2)
    if not value or "${" in value or value.startswith("["):
        return None
    names = [v.strip().strip("'\"") for v in value.split(",")]
    return [n for n in names if n and n != "null"]


def unknown_option_message(argv: list[str], conf_dir: Path = CONF_DIR) -> str | None:
    """One line naming the first misspelled `group=option` in argv, with a suggestion."""
    if any(a.startswith(("--config-dir", "-cd", "hydra.searchpath")) for a in argv):
        return None  # options may come from elsewhere; let Hydra judge
    groups = group_options(conf_dir)
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        group = key.lstrip("+").split("@", 1)[0]
        if group not in groups:
            typo = _misspelled_key(key, groups, conf_dir)
            if typo:
                return typo
            continue
        available = sorted(groups[group])
        for name in _choices(value) or []:
            if name in available:
                continue
            if group.startswith("hydra/"):
                available = sorted(set(available) | _plugin_options(group))
                if name in available:
                    continue
            close = difflib.get_close_matches(name, available, n=1, cutoff=0.5)
            hint = f"; did you mean '{close[0]}'?" if close else ";"
            return f"unknown {group} '{name}'{hint} available: {', '.join(available) or 'none'}"
    return None


def _plugin_options(group: str) -> set[str]:
    """Options that installed Hydra plugins register for a hydra/ group (joblib, optuna, ...).
    Hydra scans its plugins at startup anyway; this only does it earlier."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()
    try:
        # Entries without .yaml are sub-groups (optuna's `sampler`), not options.
        return {name.removesuffix(".yaml") for name in ConfigStore.instance().list(group)
                if name.endswith(".yaml")}
    except OSError:
        return set()


def _misspelled_key(key: str, groups: dict, conf_dir: Path) -> str | None:
    """`modle=lstm` -> a suggestion; None for keys that exist or that nothing resembles
    (Hydra's own message covers those)."""
    from dataclasses import fields

    from bench.schema import BenchConfig

    if key.startswith(("+", "~")) or "." in key or "/" in key or "@" in key:
        return None
    data = yaml.safe_load((conf_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    known = sorted({*groups, *(f.name for f in fields(BenchConfig)), *data})
    if key in known:
        return None
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
    return f"unknown key '{key}'; did you mean '{close[0]}'?" if close else None


def swept_model_key_message(argv: list[str], conf_dir: Path = CONF_DIR) -> str | None:
    """One line for `model=a,b model.<key>=v -m` when some model lacks <key>. Hydra composes the
    sweep's own config with the default model before any job, and each job with its model, so
    either fails on "not in struct"; this names the models and the fix instead."""
    if not {"-m", "--multirun"} & set(argv):
        return None
    swept = None
    for arg in argv:
        if arg.startswith("model="):
            swept = _choices(arg.split("=", 1)[1])
    if not swept or len(swept) < 2:
        return None  # one model: the override applies to the sweep config as to the job
    default = default_choices(conf_dir).get("model")
    for arg in argv:
        if not arg.startswith("model.") or "=" not in arg:
            continue
        key = arg.split("=", 1)[0]
        path = key.split(".")[1:]
        lacking = [m for m in dict.fromkeys([default, *swept])
                   if m and not _has_path(conf_dir / "model" / f"{m}.yaml", path)]
        if not lacking:
            continue
        if lacking == [default] and default not in swept:
            return (f"{key} is not a key of the default model '{default}', whose config Hydra "
                    f"composes before the sweep; write ++{arg} (every swept model has it)")
        return (f"{key} is not a key of model {', '.join(repr(m) for m in lacking if m in swept)}"
                f"; sweep the models that have it separately, or add it to their yaml")
    return None


def _has_path(path: Path, keys: list[str]) -> bool:
    node = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def check_argv(argv: list[str] | None = None) -> None:
    """Exit with status 2 and one line on stderr if argv selects an option that does not exist
    or sets a model key that a swept model lacks."""
    argv = sys.argv[1:] if argv is None else argv
    message = unknown_option_message(argv) or swept_model_key_message(argv)
    if message:
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
