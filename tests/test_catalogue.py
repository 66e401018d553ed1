"""The catalogue of user-facing text (kizuna.i18n): complete, consistent, and the only place with words.

* every key has a Japanese and an English text, with the same {fields};
* no string in kizuna's code or templates outside the catalogue looks Japanese, but for the
  exceptions listed below (data, not words);
* every key the code and the templates ask for with a literal exists, the keys of the phrases errors
  carry (``KizunaError.keyed("error.…")``, ``Phrase.of("scenario.…")``) among them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from kizuna.i18n import CATALOGUE, LANGS, SEGMENT_LABELS, fields, label, ordinal, section, segment_key, text

ROOT = Path(__file__).resolve().parents[1] / "kizuna"
JAPANESE = re.compile(r"[\u3001-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")

# Files whose Japanese is data, not words shown as labels (paths relative to kizuna/, glob patterns).
DATA_FILES = {
    "i18n.py": "the catalogue itself",
    "demo/*.py": "the demo shop's fake data: products, names, addresses, Japanese export headers",
    "importing/_platforms.py": "platform exports' header synonyms and status words",
    "importing/_values.py": "header synonyms, yes/no and status words of Japanese files",
    "importing/_parse.py": "era names and date words the parser reads (令和, 年月日)",
    "importing/_presets.py": "the header folding table (full-width brackets, ・)",
    "importing/_mapping.py": "a pattern telling data from headers (年)",
    "importing/_reasons.py": "patterns of the readers' English reasons, whose examples are Japanese (9点, 令和6年)",
    "analytics/_words.py": "the default words of [lost_reasons] that customers' notes are searched for",
    "scenarios/examples/*.yaml": "example scenarios: a shop's own message texts (not scanned: not code)",
}
# (The ideographic space U+3000 is whitespace, not a word: the scan starts at U+3001.)
# Single strings elsewhere whose Japanese is no label: (path, a piece of the string, why).
DATA_STRINGS = [
    ("delivery/_settings.py", "ボトル入りの水", "a setting's default value (what the product saves money against)"),
    ("delivery/_email.py", "、。「」（）", "a pattern: Japanese punctuation ends a URL"),
    ("delivery/_email.py", "特定電子メール法", "the law's name, in English errors"),
    ("delivery/_settings.py", "特定電子メール法", "the law's name, in a comment of the kizuna.toml written"),
    ("cli/_app.py", "絆", "the product's name in the English --help text"),
    ("cli/_app.py", "楽天", "a platform's name in the English --help text"),
    ("cli/_app.py", "離脱候補者", "an example of what may be typed, in the English --help text"),
    ("web/templates/base.html", "絆", "the brand mark"),
]


# -- the catalogue ---------------------------------------------------------------------------------
def test_every_key_has_both_texts() -> None:
    empty = [key for key, pair in CATALOGUE.items() if len(pair) != 2 or not all(t.strip() for t in pair)]
    assert not empty, f"keys without a Japanese or English text: {empty}"


def test_both_languages_have_the_same_fields() -> None:
    differ = {key: (fields(ja), fields(en)) for key, (ja, en) in CATALOGUE.items() if fields(ja) != fields(en)}
    assert not differ, f"keys whose languages use different {{fields}}: {differ}"


def test_every_text_formats() -> None:
    for pair in CATALOGUE.values():
        for pattern_text in pair:
            values = dict.fromkeys(fields(pattern_text), 1)
            pattern_text.format(**values)  # no stray brace, no positional field


def test_singulars_have_their_plural() -> None:
    orphans = [key for key in CATALOGUE if key.endswith("_one") and key.removesuffix("_one") not in CATALOGUE]
    assert not orphans
    for key in CATALOGUE:
        if key.endswith("_one"):
            base = key.removesuffix("_one")
            assert CATALOGUE[key][0] == CATALOGUE[base][0], f"{key}: Japanese has no plural"
            assert fields(CATALOGUE[key][1]) == fields(CATALOGUE[base][1]), key


def test_lookups() -> None:
    assert text("forget.list_rows", "en", count=1, n=1) == "1 row removed"
    assert text("forget.list_rows", "en", count=2, n=2) == "2 rows removed"
    assert text("forget.list_rows", "ja", count=1, n=1) == "1 行を削除"
    assert label("customers", "en") == "customers" and label("no such key") == "no such key"
    assert section("public.", "ja")["channel_email"] == "メール"
    assert segment_key("離脱候補者") == segment_key("churn candidate") == "churn_candidate"
    assert CATALOGUE["segment.churn_candidate"] == SEGMENT_LABELS["churn_candidate"]
    assert [ordinal(n, "en") for n in (1, 2, 3, 4, 11, 12, 13, 21, 112)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "112th"]
    assert ordinal(3, "ja") == "3"
    with pytest.raises(KeyError):
        text("no such key")
    assert set(LANGS) == {"ja", "en"}


# -- no words outside the catalogue ----------------------------------------------------------------
def _allowed_file(relative: str) -> bool:
    return any(Path(relative).match(pattern) for pattern in DATA_FILES)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _japanese_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string of a module (not its docstrings, not comments), or of a template."""
    source = path.read_text(encoding="utf-8")
    if path.suffix == ".html":
        source = re.sub(r"{#.*?#}", "", source, flags=re.S)
        return [(i, line.strip()) for i, line in enumerate(source.splitlines(), 1) if JAPANESE.search(line)]
    tree = ast.parse(source)
    skip = _docstrings(tree)
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip
            and JAPANESE.search(node.value)]


@pytest.mark.slow
def test_no_japanese_outside_the_catalogue() -> None:
    found = []
    for path in sorted([*ROOT.rglob("*.py"), *ROOT.rglob("*.html")]):
        relative = path.relative_to(ROOT).as_posix()
        if _allowed_file(relative):
            continue
        for line, value in _japanese_strings(path):
            rest = value
            for where, piece, _why in DATA_STRINGS:
                if where == relative:
                    rest = rest.replace(piece, "")
            if JAPANESE.search(rest):
                found.append(f"kizuna/{relative}:{line}: {value[:80]!r}")
    assert not found, "user-facing text outside kizuna/i18n.py (add it to the catalogue):\n" + "\n".join(found)


def test_the_exceptions_are_still_needed() -> None:
    """An exception that no longer matches anything is dropped, so the list stays the true one."""
    files = [p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file()]
    for pattern in DATA_FILES:
        assert any(Path(f).match(pattern) for f in files), pattern
    for where, piece, _why in DATA_STRINGS:
        assert any(piece in value for _, value in _japanese_strings(ROOT / where)), (where, piece)


# -- every key asked for exists --------------------------------------------------------------------
_TEMPLATE_KEY = re.compile(r"""\bt\(\s*["']([\w.]+)["']\s*[,)]""")  # t("key") or t("key", n=…)
_TEMPLATE_PREFIX = re.compile(r"""\bt(?:\.segment)?\(\s*["']([\w.]+)["']\s*~""")  # t("kind_" ~ row.kind)
_TEMPLATE_SEGMENT = re.compile(r"""\bt\.segment\(\s*["']([\w.]+)["']\s*\)""")
_PUBLIC_KEY = re.compile(r"\bt\.(\w+)\b")


def test_template_keys_exist() -> None:
    templates = ROOT / "web" / "templates"
    missing = []
    for path in sorted(templates.rglob("*.html")):
        source = path.read_text(encoding="utf-8")
        if path.parent.name == "public":
            missing += [f"{path.name}: t.{k}" for k in _PUBLIC_KEY.findall(source) if k not in section("public.")]
            continue
        missing += [f"{path.name}: {k}" for k in _TEMPLATE_KEY.findall(source) if k not in CATALOGUE]
        missing += [f"{path.name}: segment {k}" for k in _TEMPLATE_SEGMENT.findall(source) if k not in SEGMENT_LABELS]
        missing += [f"{path.name}: {k}…" for k in _TEMPLATE_PREFIX.findall(source)
                    if not any(key.startswith(k) for key in [*CATALOGUE, *SEGMENT_LABELS])]
    assert not missing, missing
    assert _TEMPLATE_KEY.findall((templates / "customer.html").read_text(encoding="utf-8"))  # the scan sees keys


# Functions that take a catalogue key first: name -> the prefix the function puts before it. The
# catalogue's own (label, text, pattern) count where a module imports them from kizuna.i18n.
_KEY_FUNCTIONS = {"label": "", "text": "", "pattern": "", "words": "", "_Say": "", "_t": "forget."}
_LOCAL = {"words", "_Say", "_t"}


def _catalogue_names(tree: ast.AST) -> set[str]:
    return {alias.asname or alias.name for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module == "kizuna.i18n" for alias in node.names}


@pytest.mark.slow
def test_code_keys_exist() -> None:
    """Every literal key the code looks up (``label("customers", lang)``, ``words("busy")``) is in the catalogue."""
    missing, seen = [], 0
    for path in sorted(ROOT.rglob("*.py")):
        if _allowed_file(path.relative_to(ROOT).as_posix()):
            continue  # the catalogue itself; data (the demo has a words() of its own)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        functions = _LOCAL | _catalogue_names(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else None
            if isinstance(func, ast.Call) and isinstance(func.func, ast.Name) and func.func.id == "Words":
                name = "words"  # Words(lang)("key")
            if name not in functions:
                continue
            if name == "segment_label":
                seen += 1
                if node.args[0].value not in SEGMENT_LABELS:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: segment {node.args[0].value}")
            elif name in _KEY_FUNCTIONS:
                seen += 1
                key = _KEY_FUNCTIONS[name] + node.args[0].value
                if key not in CATALOGUE:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {key}")
    assert seen > 100
    assert not missing, missing


# Calls whose first argument is the key of a phrase (kizuna._errors.Phrase): an error's, a setting's.
_PHRASE_CALLS = {"of", "keyed", "Phrase", "Allowed", "_invalid"}


@pytest.mark.slow
def test_phrase_keys_exist() -> None:
    """Every key an error, a warning or a rejected row names is in the catalogue: ``Phrase.of("key")``,
    ``KizunaError.keyed("key")``, ``Allowed("key")``, the reasons of rejected rows (``reject.*``), and the
    problems a scenario reader names by their short key (``self.fail(node, field, "unknown_field")``
    is ``scenario.unknown_field``)."""
    from kizuna.scenarios._dispatch import _NO_TRANSPORT

    missing, seen = [], 0
    for path in sorted(ROOT.rglob("*.py")):
        if path.name == "i18n.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            keys = []
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("reject."):
                keys.append(node.value)
            if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                if name in _PHRASE_CALLS and isinstance(node.args[0].value, str):
                    keys.append(node.args[0].value)
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "fail"
                    and len(node.args) >= 3 and isinstance(node.args[2], ast.Constant)):
                keys.append(f"scenario.{node.args[2].value}")
            for key in keys:
                seen += 1
                if key not in CATALOGUE:
                    missing.append(f"{path.relative_to(ROOT)}:{node.lineno}: {key}")
    assert seen > 80
    assert not missing, missing
    assert set(_NO_TRANSPORT.values()) <= set(CATALOGUE)


def test_the_codes_people_see_have_words() -> None:
    """The values kizuna shows as words: each kind of import, each status a message can have."""
    from kizuna.operations._ledger import MERGED, RECOVERABLE, WAITING
    from kizuna.store import KINDS

    assert {f"kind.{kind}" for kind in KINDS} <= set(CATALOGUE)
    statuses = {*WAITING, *RECOVERABLE, MERGED, "sent", "failed", "suppressed", "cancelled", "unconfirmed", "holdout"}
    assert {f"delivery_status.{status}" for status in statuses} <= set(CATALOGUE)
