"""The probe set scored through the real HTTP API: right-emotion sticker in the top 5, served emotion, intention.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/probe.py --url http://127.0.0.1:8000
    HF_HUB_OFFLINE=1 .venv/bin/python bench/probe.py --model CHECKPOINT --index INDEX_ROOT --catalog CATALOG \
        [--details probe.jsonl] [--json summary.json] [--out docs/results.md]

Every dialogue of probes/dialogues.jsonl is sent to POST /recommend (top_k 5, its responder): to a running
service (--url), or to the service app built in this process by `service.app.create_app` (--model/--index/
--catalog), through the same routes, batching and schemas. Per language and overall:

- sticker_top5: a hit among the top 5 whose emoji shows the expected emotion in probes/sticker_emotions.tsv
  (U+FE0F, skin tones and a trailing man/woman sign dropped; an emoji not listed shows "none"; a hit with
  no emoji shows nothing);
- emotion: the served dialogue emotion (`emotion.label`) equals the expected one;
- intention: the served intention (`intention.label`) equals the expected one; null counts as wrong.

Prints the JSON summary; --details writes one line per dialogue (the stickers served, for a person to read);
--out writes a markdown table between `<!-- probe:start -->` and `<!-- probe:end -->`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

REPO = Path(__file__).resolve().parents[1]
PROBES = REPO / "probes" / "dialogues.jsonl"
STICKER_EMOTIONS = REPO / "probes" / "sticker_emotions.tsv"
START, END = "<!-- probe:start -->", "<!-- probe:end -->"
TOP_K = 5
LANGUAGES = ("en", "zh")

# The same vocabularies as eigml.labels (EMOTIONS; INTENTIONS is the intention head's, issue 8); written out
# so the probe file is checked against the names the API promises, and a test keeps them equal.
EMOTIONS: tuple[str, ...] = ("none", "like", "happiness", "sadness", "anger", "fear", "disgust", "surprise")
INTENTIONS: tuple[str, ...] = ("inform", "question", "request", "greeting", "farewell", "thanks", "apology",
                               "congratulations", "comfort", "agreement", "refusal", "affection", "tease")

VARIATION_SELECTOR = "\ufe0f"
SKIN_TONES = {chr(c) for c in range(0x1F3FB, 0x1F400)}
GENDER_SUFFIXES = ("\u200d\u2640", "\u200d\u2642")  # ZWJ + female / male sign, after U+FE0F is dropped


class ProbeError(Exception):
    """A bad probe or reference file, or a service that cannot be reached or answers an error."""


@dataclass(frozen=True)
class Probe:
    id: str
    lang: str
    dialogue: tuple[tuple[str, str], ...]  # (speaker, text), oldest first
    responder: str
    emotion: str
    intention: str

    def body(self, top_k: int = TOP_K) -> dict[str, Any]:
        """The POST /recommend body."""
        return {"dialogue": [{"speaker": s, "text": t} for s, t in self.dialogue], "top_k": top_k,
                "responder": self.responder}


# ---- files -----------------------------------------------------------------------------------------------
def load_probes(path: Path) -> list[Probe]:
    """Every line of a probe file, checked: fields, languages, labels in the vocabularies, unique ids."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ProbeError(f"cannot read the probe file {path}: {error}") from None
    probes: list[Probe] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise ProbeError(f"{where}: not JSON ({error})") from None
        probe = _probe_of(item, where)
        if probe.id in seen:
            raise ProbeError(f"{where}: id {probe.id!r} is used twice")
        seen.add(probe.id)
        probes.append(probe)
    if not probes:
        raise ProbeError(f"{path}: no probes")
    return probes


def _probe_of(item: Any, where: str) -> Probe:
    if not isinstance(item, dict):
        raise ProbeError(f"{where}: a line must be a JSON object")
    missing = {"id", "lang", "dialogue", "responder", "emotion", "intention"} - set(item)
    if missing:
        raise ProbeError(f"{where}: missing {sorted(missing)}")
    if item["lang"] not in LANGUAGES:
        raise ProbeError(f"{where}: lang {item['lang']!r} is not one of {list(LANGUAGES)}")
    if item["emotion"] not in EMOTIONS:
        raise ProbeError(f"{where}: emotion {item['emotion']!r} is not one of {list(EMOTIONS)}")
    if item["intention"] not in INTENTIONS:
        raise ProbeError(f"{where}: intention {item['intention']!r} is not one of {list(INTENTIONS)}")
    turns = item["dialogue"]
    if not isinstance(turns, list) or not turns or not all(
            isinstance(t, dict) and isinstance(t.get("speaker"), str) and isinstance(t.get("text"), str)
            and t["speaker"] and t["text"].strip() for t in turns):
        raise ProbeError(f"{where}: dialogue must be a non-empty list of {{speaker, text}} turns")
    if not isinstance(item["id"], str) or not item["id"] or not isinstance(item["responder"], str):
        raise ProbeError(f"{where}: id and responder must be strings")
    return Probe(id=item["id"], lang=item["lang"], dialogue=tuple((t["speaker"], t["text"]) for t in turns),
                 responder=item["responder"], emotion=item["emotion"], intention=item["intention"])


def emoji_key(emoji: str) -> str:
    """The emoji as the reference lists it: no U+FE0F, no skin tone, no trailing man/woman sign."""
    key = "".join(c for c in emoji if c != VARIATION_SELECTOR and c not in SKIN_TONES)
    for suffix in GENDER_SUFFIXES:
        if key.endswith(suffix) and len(key) > len(suffix):
            key = key[: -len(suffix)]
    return key


def load_sticker_emotions(path: Path) -> dict[str, frozenset[str]]:
    """emoji key -> the emotions its sticker shows; '#' lines and the `emoji<TAB>emotions` header skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise ProbeError(f"cannot read the sticker emotions {path}: {error}") from None
    table: dict[str, frozenset[str]] = {}
    for number, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#") or line == "emoji\temotions":
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0]:
            raise ProbeError(f"{path}:{number}: expected emoji<TAB>emotions, got {line!r}")
        emotions = frozenset(e.strip() for e in parts[1].split(","))
        unknown = emotions - set(EMOTIONS)
        if unknown:
            raise ProbeError(f"{path}:{number}: unknown emotion(s) {sorted(unknown)}")
        key = emoji_key(parts[0])
        if key in table:
            raise ProbeError(f"{path}:{number}: {parts[0]} is listed twice")
        table[key] = emotions
    if not table:
        raise ProbeError(f"{path}: no emoji")
    return table


# ---- judging ---------------------------------------------------------------------------------------------
def sticker_emotions(emoji: str | None, table: Mapping[str, frozenset[str]]) -> frozenset[str]:
    """What a hit's emoji shows: its reference emotions, "none" when not listed, nothing without an emoji."""
    if not emoji:
        return frozenset()
    return table.get(emoji_key(emoji), frozenset({"none"}))


# Reply intentions no sticker performs: "inform" (no act) and "question" (asked in words); eigml.selection.NO_ACTS.
NO_ACTS = frozenset({"inform", "question"})


# Words in a sticker's name that mark an act it performs: the same words the training side labels sticker
# tags with (training.data.intentions.STICKER_CUES; written out, as bench never imports training, and a test
# keeps them equal). A name marks an act when it, or one of its words, is one of the act's words.
ACT_WORDS: dict[str, frozenset[str]] = {
    "greeting": frozenset({"waving hand", "hello", "hi", "招手", "你好", "打招呼", "挥手"}),
    "farewell": frozenset({"waving hand", "bye", "goodbye", "再见", "拜拜", "挥手"}),
    "thanks": frozenset({"thanks", "thank you", "grateful", "pray", "folded hands", "谢谢", "感谢", "祈祷", "双手合十"}),
    "apology": frozenset({"sorry", "apology", "bow", "bowing", "鞠躬", "道歉", "对不起"}),
    "congratulations": frozenset({"congratulations", "celebration", "celebrate", "party", "tada", "confetti", "clap",
                                  "clapping", "trophy", "medal", "祝贺", "庆祝", "派对", "鼓掌", "奖杯", "彩带"}),
    "comfort": frozenset({"hug", "hugging", "comfort", "拥抱", "抱抱", "安慰"}),
    "agreement": frozenset({"ok", "okay", "thumbs up", "+1", "yes", "agree", "approve", "check mark",
                            "好", "赞", "同意", "可以", "点赞", "竖起大拇指"}),
    "refusal": frozenset({"no", "not", "prohibited", "forbidden", "thumbs down", "-1", "cross mark", "no good",
                          "stop", "禁止", "不行", "拒绝", "不", "叉"}),
    "question": frozenset({"question", "thinking", "thought", "wonder", "confused", "shrug", "疑问", "问号", "思考",
                           "困惑", "耸肩"}),
    "affection": frozenset({"kiss", "love", "heart", "in love", "adore", "亲", "飞吻", "爱", "爱心", "心"}),
    "tease": frozenset({"tongue", "wink", "winking", "zany", "silly", "joke", "吐舌", "眨眼", "调皮", "鬼脸"}),
    "request": frozenset({"please", "beg", "pleading", "请", "拜托", "求"}),
}


def sticker_acts(name: str | None) -> frozenset[str]:
    """The acts a hit's name marks ("waving hand" greets and says farewell, "folded hands" thanks, "party
    popper" congratulates, "red heart" shows affection)."""
    if not name or not name.strip():
        return frozenset()
    words = {name.strip().lower(), *name.strip().lower().split()}
    return frozenset(act for act, marks in ACT_WORDS.items() if words & marks)


def judge(probe: Probe, response: Mapping[str, Any], table: Mapping[str, frozenset[str]],
          top_k: int = TOP_K) -> dict[str, Any]:
    """One dialogue's record: the stickers served with what they show, and the judgements (`act_top5`: a
    sticker that performs the expected reply act is among them; None when the reply performs none)."""
    hits = [{"emoji": h.get("emoji"), "name": h.get("name"), "sticker_id": h.get("sticker_id"),
             "shows": sorted(sticker_emotions(h.get("emoji"), table))} for h in response["hits"][:top_k]]
    emotion = response.get("emotion") or {}
    intention = response.get("intention") or {}
    return {"id": probe.id, "lang": probe.lang, "dialogue": [f"{s}: {t}" for s, t in probe.dialogue],
            "expected": {"emotion": probe.emotion, "intention": probe.intention},
            "served": {"emotion": emotion.get("label"), "emotion_probability": emotion.get("probability"),
                       "intention": intention.get("label"), "intention_probability": intention.get("probability")},
            "stickers": hits,
            "sticker_top5": any(probe.emotion in h["shows"] for h in hits),
            "act_top5": None if probe.intention in NO_ACTS else any(probe.intention in sticker_acts(h["name"]) for h in hits),
            "emotion_right": emotion.get("label") == probe.emotion,
            "intention_right": intention.get("label") == probe.intention}


def summarise(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Counts and rates per language, overall ("all") and per expected emotion within each language."""
    def tally(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        n = len(rows)
        counts = {key: sum(bool(r[key]) for r in rows) for key in ("sticker_top5", "emotion_right", "intention_right")}
        acts = [r for r in rows if r.get("act_top5") is not None]
        counts.update(act_top5=sum(bool(r["act_top5"]) for r in acts), act_dialogues=len(acts))
        return {"n": n, "sticker_top5": counts["sticker_top5"] / n if n else 0.0,
                "act_top5": counts["act_top5"] / len(acts) if acts else 0.0,
                "emotion_accuracy": counts["emotion_right"] / n if n else 0.0,
                "intention_accuracy": counts["intention_right"] / n if n else 0.0,
                "counts": {**counts, "intention_null": sum(r["served"]["intention"] is None for r in rows)}}

    languages = sorted({r["lang"] for r in records})
    summary: dict[str, Any] = {lang: tally([r for r in records if r["lang"] == lang]) for lang in languages}
    summary["all"] = tally(records)
    summary["by_emotion"] = {
        lang: {e: {k: v for k, v in tally(rows).items() if k != "counts"}
               for e in EMOTIONS if (rows := [r for r in records if r["lang"] == lang and r["expected"]["emotion"] == e])}
        for lang in languages}
    return summary


# ---- the service -----------------------------------------------------------------------------------------
class Client(Protocol):
    """httpx.Client or Starlette's TestClient."""

    def get(self, url: str) -> Any: ...

    def post(self, url: str, *, json: Any) -> Any: ...


def wait_ready(client: Client, seconds: float) -> dict[str, Any]:
    """/readyz's body once it says ready; ProbeError when the service fails to load or is not up in time."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            r = client.get("/readyz")
        except httpx.TransportError as error:  # a service may be starting: retry until the deadline
            if time.monotonic() > deadline:
                raise ProbeError(f"cannot reach the service ({type(error).__name__}: {error}); is it running?"
                                 ) from None
            time.sleep(0.5)
            continue
        if r.status_code == 200:
            return dict(r.json())
        message = _error_message(r)
        if r.status_code != 503 or "loading" not in message:
            raise ProbeError(f"the service is not ready: HTTP {r.status_code} {message}")
        if time.monotonic() > deadline:
            raise ProbeError(f"the service was not ready after {seconds:.0f} s: {message}")
        time.sleep(0.25)


def _error_message(r: Any) -> str:
    try:
        return str(r.json()["error"]["message"])
    except Exception:
        return str(r.text)[:500]


def ask(client: Client, probes: Sequence[Probe], table: Mapping[str, frozenset[str]],
        top_k: int = TOP_K) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """Every probe through POST /recommend: (records, {model_version, index_version})."""
    import httpx

    records, versions = [], {}
    for probe in probes:
        try:
            r = client.post("/recommend", json=probe.body(top_k))
        except httpx.TransportError as error:
            raise ProbeError(f"{probe.id}: the service stopped answering ({type(error).__name__}: {error})") from None
        if r.status_code != 200:
            raise ProbeError(f"{probe.id}: POST /recommend answered HTTP {r.status_code}: {_error_message(r)}")
        body = r.json()
        versions = {"model_version": body["model_version"], "index_version": body["index_version"]}
        records.append(judge(probe, body, table, top_k))
    return records, versions


@contextmanager
def remote_client(url: str, timeout_seconds: float) -> Iterator[Client]:
    import httpx

    with httpx.Client(base_url=url, timeout=timeout_seconds) as client:
        yield client


@contextmanager
def local_client(args: argparse.Namespace) -> Iterator[Client]:
    """The service app with its own lifespan (loading in a thread, micro-batching worker), in this process."""
    from fastapi.testclient import TestClient

    from service.app import create_app
    from service.settings import Settings

    for name in ("model", "index", "catalog"):
        if not getattr(args, name).exists():
            raise ProbeError(f"--{name} {getattr(args, name)} does not exist")
    settings = Settings(model=args.model, index=args.index, catalog=args.catalog, cache_dir=args.cache_dir,
                        encoder_backend=args.backend, threads=args.threads, redis_url=None, log_level="warning")
    with TestClient(create_app(settings), base_url="http://probe") as client:
        yield client


# ---- report ----------------------------------------------------------------------------------------------
def render(summary: Mapping[str, Any], argv: Sequence[str]) -> str:
    command = " ".join(shlex.quote(a) for a in [".venv/bin/python", "bench/probe.py", *argv])
    lines = [START, "## Probe set (bench/probe.py)", "", f"Command: `{command}`", "",
             f"Model `{summary.get('model_version')}`, index `{summary.get('index_version')}`; "
             f"{summary['all']['n']} hand-written dialogues (probes/dialogues.jsonl), top {summary['top_k']}.", "",
             "| language | dialogues | right-emotion sticker in top 5 | served emotion | served intention | "
             "right-act sticker in top 5 (dialogues whose reply is an act) |",
             "|---|---:|---:|---:|---:|---:|"]
    for lang in [*LANGUAGES, "all"]:
        if lang in summary:
            s = summary[lang]
            lines.append(f"| {lang} | {s['n']} | {s['sticker_top5']:.2f} | {s['emotion_accuracy']:.2f} | "
                         f"{s['intention_accuracy']:.2f} ({s['counts']['intention_null']} null) | "
                         f"{s['act_top5']:.2f} ({s['counts']['act_dialogues']}) |")
    return "\n".join([*lines, END])


def write_section(path: Path, section: str) -> None:
    """Replace the probe section of `path` (or append it; or create the file)."""
    text = path.read_text() if path.exists() else "# Results\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    from eigml.paths import Paths

    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running service, e.g. http://127.0.0.1:8000")
    where.add_argument("--model", type=Path, help="EIGML checkpoint folder: serve it in this process")
    parser.add_argument("--index", type=Path, help="index root (with --model)")
    parser.add_argument("--catalog", type=Path, help="sticker catalogue root (with --model)")
    parser.add_argument("--cache-dir", type=Path, default=Paths.from_env().cache_dir)
    parser.add_argument("--backend", choices=["auto", "onnx", "torch"], default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch / ONNX Runtime threads (with --model)")
    parser.add_argument("--probes", type=Path, default=PROBES)
    parser.add_argument("--sticker-emotions", type=Path, default=STICKER_EMOTIONS)
    parser.add_argument("--top-k", type=int, default=TOP_K)
    parser.add_argument("--startup-seconds", type=float, default=None,
                        help="how long to wait for /readyz (default: 30 with --url, 600 with --model)")
    parser.add_argument("--timeout-seconds", type=float, default=60.0, help="per request (with --url)")
    parser.add_argument("--details", type=Path, help="write one JSON line per dialogue here")
    parser.add_argument("--json", type=Path, help="write the summary here too")
    parser.add_argument("--out", type=Path, help="write a markdown section into this file (e.g. docs/results.md)")
    args = parser.parse_args(argv)
    if args.model is not None and (args.index is None or args.catalog is None):
        parser.error("--model needs --index and --catalog")
    try:
        probes = load_probes(args.probes)
        table = load_sticker_emotions(args.sticker_emotions)
        client = remote_client(args.url, args.timeout_seconds) if args.url else local_client(args)
        with client as c:
            ready = wait_ready(c, args.startup_seconds if args.startup_seconds is not None
                               else 30.0 if args.url else 600.0)
            print(f"probe: service ready: {ready}; {len(probes)} dialogues", file=sys.stderr)
            records, versions = ask(c, probes, table, args.top_k)
    except ProbeError as error:
        print(f"probe: {error}", file=sys.stderr)
        return 2
    summary = {**versions, "top_k": args.top_k, **summarise(records)}
    text = json.dumps(summary, indent=2, ensure_ascii=False)
    if args.details is not None:
        args.details.parent.mkdir(parents=True, exist_ok=True)
        args.details.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n", encoding="utf-8")
    if args.out is not None:
        write_section(args.out, render(summary, argv))
    print(text)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))  # run as a script: the service and core packages of this checkout
    sys.exit(main())
