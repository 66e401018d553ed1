"""kizuna.toml is checked when it is read: a wrong value stops a command in one line naming the
setting, the value given and what is allowed, instead of a traceback later or a silent change to
every segment."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kizuna._errors import WorkspaceError
from kizuna.settings import allowed
from kizuna.workspace import SETTINGS_FILE, RankRule, Settings, Workspace

KIZUNA = [sys.executable, "-m", "kizuna"]

RANK = "{{ label = {label}, max_recency_days = {recency}, min_orders = {orders}, min_revenue = {revenue} }}"


def rank(label: str = '"loyal"', recency: str = "30", orders: str = "15", revenue: str = "500000") -> str:
    return RANK.format(label=label, recency=recency, orders=orders, revenue=revenue)


def q(text: str) -> str:
    return f'"{text}"'


def with_setting(text: str, key: str, toml_value: str) -> str:
    """kizuna.toml as written by `kizuna init`, with one setting's value replaced."""
    pattern = r"^rfm_ranks = \[\n.*?^\]$" if key == "rfm_ranks" else rf"^{key} = [^#\n]*"
    changed, n = re.subn(pattern, lambda _: f"{key} = {toml_value} ", text, count=1, flags=re.M | re.S)
    assert n == 1, key
    return changed


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace made by `kizuna init`, copied by each test that changes it."""
    cwd = tmp_path_factory.mktemp("settings")
    done = subprocess.run([*KIZUNA, "init", "ws"], capture_output=True, text=True, cwd=cwd, check=False)
    assert done.returncode == 0, done.stderr
    return cwd / "ws"


ALLOWED_DAYS = "an integer from 1 to 36,500"
BAD = [  # (key, value as written in kizuna.toml, the message after "kizuna.toml: ")
    ("timezone", '"Mars/Olympus"',
     'business.timezone must be an IANA time zone such as "Asia/Tokyo" (names are case-sensitive), '
     'got "Mars/Olympus".'),
    ("timezone", '"Asia"',
     'business.timezone must be an IANA time zone such as "Asia/Tokyo" (names are case-sensitive), got "Asia".'),
    ("timezone", '"../../etc/passwd"',
     'business.timezone must be an IANA time zone such as "Asia/Tokyo" (names are case-sensitive), '
     'got "../../etc/passwd".'),
    ("currency", '"yen"', 'business.currency must be a 3-letter currency code in capitals, such as "JPY", got "yen".'),
    ("currency", "392", 'business.currency must be a 3-letter currency code in capitals, such as "JPY", got 392.'),
    ("gross_margin_rate", "7", "business.gross_margin_rate must be a number between 0 and 1, got 7."),
    ("gross_margin_rate", "-0.1", "business.gross_margin_rate must be a number between 0 and 1, got -0.1."),
    ("gross_margin_rate", '"40%"', 'business.gross_margin_rate must be a number between 0 and 1, got "40%".'),
    ("url", "5", "store.url must be text in quotes, got 5."),
    ("memory_limit", "2", "store.memory_limit must be text in quotes, got 2."),
    ("as_of", '"yesterday"',
     'analysis.as_of must be a date written YYYY-MM-DD from 1900-01-01 to 2999-12-31 (or empty for today), '
     'got "yesterday".'),
    ("as_of", '"0001-01-01"',
     'analysis.as_of must be a date written YYYY-MM-DD from 1900-01-01 to 2999-12-31 (or empty for today), '
     'got "0001-01-01".'),
    ("dormant_days", "true", f"analysis.dormant_days must be {ALLOWED_DAYS}, got true."),
    ("dormant_days", "-90", f"analysis.dormant_days must be {ALLOWED_DAYS}, got -90."),
    ("dormant_days", "90.5", f"analysis.dormant_days must be {ALLOWED_DAYS}, got 90.5."),
    ("rfm_window_days", "0", f"analysis.rfm_window_days must be {ALLOWED_DAYS}, got 0."),
    ("nps_validity_days", "36501", f"analysis.nps_validity_days must be {ALLOWED_DAYS}, got 36501."),
    ("lost_lookback_days", "-1", f"analysis.lost_lookback_days must be {ALLOWED_DAYS}, got -1."),
    ("f2_window_days", '"90"', f'analysis.f2_window_days must be {ALLOWED_DAYS}, got "90".'),
    ("lapse_factor", "0", "analysis.lapse_factor must be a number between 0 and 100 (exclusive of 0), got 0."),
    ("lapse_factor", "inf", "analysis.lapse_factor must be a number between 0 and 100 (exclusive of 0), got inf."),
    ("lapse_factor", "nan", "analysis.lapse_factor must be a number between 0 and 100 (exclusive of 0), got nan."),
    ("high_ltv_top_share", "2.5",
     "analysis.high_ltv_top_share must be a number between 0 and 1 (exclusive of 0), got 2.5."),
    ("high_ltv_top_share", "0",
     "analysis.high_ltv_top_share must be a number between 0 and 1 (exclusive of 0), got 0."),
    ("high_ltv_min_yen", "-1",
     "analysis.high_ltv_min_yen must be an integer from 0 to 1,000,000,000,000,000, got -1."),
    ("batch_rows", "0", "import.batch_rows must be an integer from 1 to 10,000,000, got 0."),
    ("lock_wait", "3601", "store.lock_wait must be an integer from 0 to 3,600, got 3601."),
    ("horizon_days", "6", "prediction.horizon_days must be an integer from 7 to 3,650, got 6."),
    ("high_risk", "0", "prediction.high_risk must be a number between 0 and 1 (exclusive of 0), got 0."),
    # the first holdout_share of the file: [calls] (its call lists' holdout) comes before [delivery]
    ("holdout_share", "0.95", "calls.holdout_share must be a number between 0 and 0.5, got 0.95."),
    ("global_control_share", "0.6", "delivery.global_control_share must be a number between 0 and 0.5, got 0.6."),
    ("quiet_start", '"24:00"',
     'delivery.quiet_start must be a time of day written "HH:MM" (24-hour clock), got "24:00".'),
    ("skip_holidays", "1", "delivery.skip_holidays must be true or false, got 1."),
    ("smtp_url", '"http://mail"',
     'email.smtp_url must be smtp://host:port or smtps://user@host:port (or empty for no e-mail), got "http://mail".'),
    ("api_base", '"ftp://x"', 'line.api_base must be an http:// or https:// address, got "ftp://x".'),
    ("public_url", '""', 'web.public_url must be an http:// or https:// address, got "".'),
    ("batch_rows", "false", "import.batch_rows must be an integer from 1 to 10,000,000, got false."),
    ("rfm_ranks", "[]",
     "analysis.rfm_ranks must be a list of one or more ranks, best first, each "
     "{ label = …, max_recency_days = …, min_orders = …, min_revenue = … }, got []."),
    ("rfm_ranks", "5",
     "analysis.rfm_ranks must be a list of one or more ranks, best first, each "
     "{ label = …, max_recency_days = …, min_orders = …, min_revenue = … }, got 5."),
    ("rfm_ranks", "[5]",
     "rank 1 in analysis.rfm_ranks must be a table "
     "{ label = …, max_recency_days = …, min_orders = …, min_revenue = … }, got 5."),
    ("rfm_ranks", f'[{rank()}, {{ label = "a", min_orders = 1, min_revenue = 1 }}]',
     "rank 2 in analysis.rfm_ranks must have exactly label, max_recency_days, min_orders, min_revenue; "
     "missing max_recency_days."),
    ("rfm_ranks", f'[{rank()[:-2]}, colour = "gold" }}]',
     "rank 1 in analysis.rfm_ranks must have exactly label, max_recency_days, min_orders, min_revenue; "
     "unknown: colour."),
    ("rfm_ranks", f'[{rank()}, {rank(label=q("other"))}]',
     'label of rank 2 in analysis.rfm_ranks must be a non-empty name other than "other" '
     '(the rank of customers who meet none), got "other".'),
    ("rfm_ranks", f'[{rank(label=q(" "))}]',
     'label of rank 1 in analysis.rfm_ranks must be a non-empty name other than "other" '
     '(the rank of customers who meet none), got " ".'),
    ("rfm_ranks", f"[{rank(label='1')}]",
     'label of rank 1 in analysis.rfm_ranks must be a non-empty name other than "other" '
     '(the rank of customers who meet none), got 1.'),
    ("rfm_ranks", f"[{rank()}, {rank(label=q('a'))}, {rank(label=q('Loyal'))}]",
     'label of rank 3 in analysis.rfm_ranks must be different from the label of rank 1, got "Loyal".'),
    ("rfm_ranks", f"[{rank()}, {rank(label=q('a'), orders='true')}]",
     "min_orders of rank 2 in analysis.rfm_ranks must be an integer from 0 to 1,000,000,000, got true."),
    ("rfm_ranks", f"[{rank(recency='-1')}]",
     "max_recency_days of rank 1 in analysis.rfm_ranks must be an integer from 0 to 36,500, got -1."),
    ("rfm_ranks", f"[{rank(revenue='5e5')}]",
     "min_revenue of rank 1 in analysis.rfm_ranks must be an integer from 0 to 1,000,000,000,000,000, "
     "got 500000.0."),
]
IDS = [f"{key}-{n}" for n, (key, _, _) in enumerate(BAD)]


@pytest.mark.parametrize(("key", "value", "message"), BAD, ids=IDS)
@pytest.mark.slow
def test_from_dict_names_the_setting_the_value_and_what_is_allowed(template: Path, key, value, message):
    text = with_setting((template / SETTINGS_FILE).read_text(encoding="utf-8"), key, value)
    with pytest.raises(WorkspaceError) as caught:
        Settings.from_dict(tomllib.loads(text))
    assert str(caught.value) == f"kizuna.toml: {message}"


# Through the CLI, a sample of the cases (each is a process of its own, ~1.5 s): the same message.
@pytest.mark.parametrize(("key", "value", "message"), BAD[::6], ids=IDS[::6])
@pytest.mark.slow
def test_the_cli_stops_in_one_line_on_a_bad_setting(template: Path, tmp_path: Path, key, value, message):
    shutil.copytree(template, tmp_path / "ws")
    path = tmp_path / "ws" / SETTINGS_FILE
    path.write_text(with_setting(path.read_text(encoding="utf-8"), key, value), encoding="utf-8")
    done = subprocess.run([*KIZUNA, "segments", "--dir", "ws", "--lang", "en"], capture_output=True, text=True,
                          cwd=tmp_path, check=False)
    assert (done.returncode, done.stderr) == (1, f"error: {Path('ws', SETTINGS_FILE)}: {message}\n")


# The same in Japanese, the language of a workspace `kizuna init` makes: a sample of the kinds of message.
BAD_JA = [
    ("timezone", '"Asia"',
     'business.timezone の値は"Asia/Tokyo" のような IANA のタイムゾーン名 (大文字・小文字を区別します)にしてください '
     '(指定された値: "Asia")。'),
    ("gross_margin_rate", "7", "business.gross_margin_rate の値は0〜1 の数値にしてください (指定された値: 7)。"),
    ("skip_holidays", "1", "delivery.skip_holidays の値はtrue か falseにしてください (指定された値: 1)。"),
    ("rfm_ranks", f"[{rank()}, {rank(label=q('a'))}, {rank(label=q('Loyal'))}]",
     'analysis.rfm_ranks の 3番目のランクの label は、1番目のランクと別の名前にしてください (指定された値: "Loyal")。'),
    ("rfm_ranks", f"[{rank(recency='-1')}]",
     "analysis.rfm_ranks の 1番目のランクの max_recency_days は0〜36,500 の整数にしてください (指定された値: -1)。"),
]


@pytest.mark.parametrize(("key", "value", "message"), BAD_JA, ids=[f"{k}-{n}" for n, (k, _, _) in enumerate(BAD_JA)])
def test_a_bad_setting_is_said_in_japanese(template: Path, key, value, message):
    text = with_setting((template / SETTINGS_FILE).read_text(encoding="utf-8"), key, value)
    with pytest.raises(WorkspaceError) as caught:
        Settings.from_dict(tomllib.loads(text))
    assert caught.value.text("ja") == f"kizuna.toml: {message}"


def test_the_cli_says_a_bad_setting_in_the_workspaces_language(template: Path, tmp_path: Path):
    shutil.copytree(template, tmp_path / "ws")
    path = tmp_path / "ws" / SETTINGS_FILE
    key, value, message = BAD_JA[1]
    path.write_text(with_setting(path.read_text(encoding="utf-8"), key, value), encoding="utf-8")
    done = subprocess.run([*KIZUNA, "segments", "--dir", "ws"], capture_output=True, text=True, cwd=tmp_path,
                          check=False)
    assert (done.returncode, done.stderr) == (1, f"エラー: {Path('ws', SETTINGS_FILE)}: {message}\n")


@pytest.mark.slow
def test_a_settings_file_that_is_not_utf8_is_named_in_one_line(template: Path, tmp_path: Path):
    shutil.copytree(template, tmp_path / "ws")
    path = tmp_path / "ws" / SETTINGS_FILE
    path.write_bytes(path.read_text(encoding="utf-8").replace('"JPY"', '"JPY" # 日本円').encode("cp932"))
    with pytest.raises(WorkspaceError, match=r"kizuna.toml: not UTF-8 text \(byte \d+ cannot be read\); "
                                             r"save the file as UTF-8\.$"):
        Settings.load(path)
    done = subprocess.run([*KIZUNA, "segments", "--dir", "ws"], capture_output=True, text=True, cwd=tmp_path,
                          check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and "UTF-8 のテキストではありません" in done.stderr


def test_unknown_sections_and_keys_are_still_refused_by_name():
    with pytest.raises(WorkspaceError, match=r"^kizuna.toml: unknown section \[bussiness\]; known: "
                                             r"business, store, operations, analysis, lost_reasons, import, "
                                             r"prediction, calls, delivery, "
                                             r"email, line, costs, web, report\.$"):
        Settings.from_dict({"bussiness": {}})
    with pytest.raises(WorkspaceError, match=r"^kizuna.toml: unknown setting analysis.dormant; known in "):
        Settings.from_dict({"analysis": {"dormant": 90}})
    with pytest.raises(WorkspaceError, match=r"^kizuna.toml: \[analysis\] must be a section of settings "
                                             r"\(key = value lines\), got analysis = 5\.$"):
        Settings.from_dict({"analysis": 5})


def test_valid_values_at_the_edges_are_kept():
    settings = Settings.from_dict({
        "business": {"currency": "USD", "timezone": "UTC", "gross_margin_rate": 1},
        "store": {"memory_limit": ""},
        "analysis": {
            "dormant_days": 1, "rfm_window_days": 36_500, "lapse_factor": 1, "high_ltv_top_share": 1,
            "high_ltv_min_yen": 0,
            "rfm_ranks": [{"label": "優良", "max_recency_days": 0, "min_orders": 0, "min_revenue": 0}],
        },
        "import": {"batch_rows": 1},
    })
    business, analysis = settings.business, settings.analysis
    assert (business.currency, business.timezone, analysis.dormant_days) == ("USD", "UTC", 1)
    assert business.gross_margin_rate == 1.0 and isinstance(business.gross_margin_rate, float)
    assert analysis.lapse_factor == 1.0 and isinstance(analysis.lapse_factor, float)
    assert analysis.rfm_ranks == (RankRule("優良", 0, 0, 0),)
    assert settings.importing.batch_rows == 1


def test_as_of_may_be_a_toml_date():
    settings = Settings.from_dict(tomllib.loads("[analysis]\nas_of = 2025-03-31\n"))
    assert settings.analysis.as_of == "2025-03-31"


def test_the_default_settings_round_trip_through_kizuna_toml(template: Path):
    assert Settings.load(template / SETTINGS_FILE) == Settings()
    odd = Settings().replace(analysis={"rfm_ranks": (RankRule('gold "VIP"\\', 30, 1, 1),)},
                             store={"url": 'C:\\shops\\"a"'})
    assert Settings.from_dict(tomllib.loads(odd.to_toml())) == odd  # quotes and backslashes escaped


def test_changed_settings_round_trip_through_kizuna_toml():
    changed = Settings.from_dict({
        "business": {"currency": "USD", "timezone": "Europe/Berlin", "gross_margin_rate": 0.25},
        "store": {"memory_limit": "2GB", "lock_wait": 0},
        "operations": {"url": "postgres://u:p@db:5432/ops"},
        "analysis": {"as_of": "2025-03-31", "lapse_factor": 1.5, "high_ltv_min_yen": 10**15,
                     "rfm_ranks": [{"label": "優良 #1", "max_recency_days": 0, "min_orders": 0, "min_revenue": 0}]},
        "import": {"batch_rows": 1},
        "prediction": {"horizon_days": 7, "discount_rate": 1e-05, "high_risk": 1},
        "delivery": {"quiet_start": "23:59", "skip_holidays": False, "holdout_share": 0.9, "alternative_name": "x\ny"},
        "email": {"smtp_url": "smtps://user@mail.example.jp:465", "starttls": True, "sender": "Shop <a@b.jp>"},
        "line": {"api_base": "http://127.0.0.1:9/"},
        "web": {"public_url": "https://shop.example.jp/kizuna"},
    })
    assert changed.line.api_base == "http://127.0.0.1:9"  # a trailing slash is dropped
    for settings in (Settings(), changed):
        assert Settings.from_dict(tomllib.loads(settings.to_toml())) == settings


def test_every_setting_is_described_in_the_kizuna_toml_written():
    text = Settings().to_toml()
    for name, section_field in Settings.model_fields.items():
        section = section_field.annotation
        assert f"[{section_field.alias or name}]" in text and section.__doc__, name
        for key, field in section.model_fields.items():
            assert field.description, f"{name}.{key} has no description"
            assert re.search(rf"^{key} = ", text, re.M), key
            assert " ".join(field.description.split()[:3]) in " ".join(text.replace("# ", "").split()), key


def test_every_range_a_message_names_is_the_range_enforced():
    # a bound written on a field over a type with its own (Field(le=…) on a Share) would not hold
    for name, section_field in Settings.model_fields.items():
        section = section_field.alias or name
        for key, field in section_field.annotation.model_fields.items():
            if field.annotation not in (int, float):
                continue
            words = str(allowed(field))
            low, high = (float(n.replace(",", "")) for n in re.findall(r"(?:from|between|to|and) (-?[\d,.]+)", words))
            step = 1 if field.annotation is int else 1e-9
            cast = field.annotation
            Settings.from_dict({section: {key: cast(high)}})
            for wrong in (cast(high + step), cast(low) if "exclusive" in words else cast(low - step)):
                with pytest.raises(WorkspaceError, match=f"{section}.{key} must be"):
                    Settings.from_dict({section: {key: wrong}})
            if "exclusive" not in words:
                Settings.from_dict({section: {key: cast(low)}})


def test_replace_checks_the_values_as_kizuna_toml_does():
    assert Settings().replace(analysis={"dormant_days": 30}).analysis.dormant_days == 30
    with pytest.raises(WorkspaceError, match=r"^settings: analysis.dormant_days must be an integer from 1 to "
                                             r"36,500, got 0\.$"):
        Settings().replace(analysis={"dormant_days": 0})


@pytest.mark.slow
def test_the_demo_settings_load(tmp_path: Path):
    from kizuna.demo import build_demo

    result = build_demo(tmp_path / "demo", customers=50)
    result.workspace.close()
    with Workspace.open(tmp_path / "demo") as ws:
        # the demo's ranks are suggested from its customers (kizuna ranks suggest), under the default names
        assert ws.settings.analysis.as_of and [r.label for r in ws.settings.analysis.rfm_ranks] == \
            [r.label for r in Settings().analysis.rfm_ranks]
