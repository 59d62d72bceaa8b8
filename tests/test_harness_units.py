"""The harness's pure parts: scenario validation, prompt fingerprints, text resolution,
tone detection, the E-model and the JUnit output. No SIP here (tests/test_harness_stack.py
runs calls)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from ivr.harness import analysis
from ivr.harness.call import CallContext, CallResult, StepResult
from ivr.harness.fingerprint import (
    BITS,
    EARLY_FRAMES,
    HOP_SAMPLES,
    MIN_HEARD_SHARE,
    StreamFingerprint,
    ber_at,
    ber_by_offset,
)
from ivr.harness.prompt_index import PromptIndex, text_similarity
from ivr.harness.results import junit_xml
from ivr.harness.scenario import ScenarioError, check_prompts, load_scenario
from ivr.harness.search import PromptSearch
from media.g711 import ulaw_decode, ulaw_encode
from media.pcm import read_wav_mono16, sound_start, trim_lead
from media.probe import StreamStats

ROOT = Path(__file__).resolve().parent.parent
PROMPTS = ROOT / "prompts"


@pytest.fixture(scope="module")
def index() -> PromptIndex:
    return PromptIndex.load(PROMPTS)


def _clip(lang: str, name: str) -> np.ndarray:
    return read_wav_mono16(PROMPTS / lang / f"{name}.wav")[0]


def _heard(*parts: np.ndarray) -> StreamFingerprint:
    """Audio as a call hears it: through G.711 u-law, fed in 100 ms pieces."""
    pcm = ulaw_decode(ulaw_encode(np.concatenate(parts).astype(np.int16)))
    sf = StreamFingerprint()
    for i in range(0, pcm.size, 800):
        sf.feed(pcm[i: i + 800])
    return sf


def _search(sf: StreamFingerprint, index: PromptIndex, key: str):  # type: ignore[no-untyped-def]
    lang, name = key.split(":")
    prompt = index.get(lang, name)
    assert prompt is not None
    return PromptSearch(prompt.print, 0).poll(sf), prompt


def test_a_prompt_is_found_through_g711_at_a_lower_level_at_any_offset(index: PromptIndex
                                                                      ) -> None:
    menu = _clip("en-US", "main_menu")
    for gain, lead in ((1.0, 0), (0.2, 17), (0.5, HOP_SAMPLES // 2 + 3)):
        sf = _heard(np.zeros(4000 + lead), (menu * gain), np.zeros(4000))
        match, prompt = _search(sf, index, "en-US:main_menu")
        assert match is not None, f"gain {gain}, lead {lead}"
        assert match.ber < 0.2
        # the prompt's trimmed lead silence is under 60 ms: the match starts near sample 4000
        assert abs(match.frame * HOP_SAMPLES - (4000 + lead)) < 8000 * 0.1


def test_a_prompt_is_found_when_the_caller_lost_frames_of_it(index: PromptIndex) -> None:
    # a busy machine's clock skipped three 20 ms frames: the rest of the prompt comes early
    menu = _clip("zh-CN", "main_menu")
    cut = np.concatenate([menu[:16000], menu[16160:32000], menu[32160:48000], menu[48160:]])
    for clip in (_clip("en-US", "welcome"), cut):
        short = np.concatenate([clip[:4000], clip[4160:]])
        key = "en-US:welcome" if clip.size < 20000 else "zh-CN:main_menu"
        match, _ = _search(_heard(np.zeros(1000), short, np.zeros(4000)), index, key)
        assert match is not None and match.ber < 0.22, key


def test_the_first_prompt_is_found_when_the_stream_began_after_it(index: PromptIndex) -> None:
    # the ear was attached 150 ms into the language menu (the IVR plays at once)
    menu = _clip("en-US", "language_menu")
    sf = _heard(menu[1200:], np.zeros(4000))
    prompt = index.get("en-US", "language_menu")
    assert prompt is not None
    assert PromptSearch(prompt.print, 0).poll(sf) is None
    match = PromptSearch(prompt.print, -EARLY_FRAMES).poll(sf)
    assert match is not None and -EARLY_FRAMES < match.frame < 0 and match.ber < 0.2


def test_a_prompt_is_timed_from_where_its_sound_begins_trimmed_or_not(index: PromptIndex
                                                                      ) -> None:
    # The print starts at the prompt's first voiced window; key -> prompt is timed from the
    # first sound (media.pcm.sound_start), which the stack plays after 20 ms of its lead.
    prompt = index.get("en-US", "welcome")
    assert prompt is not None
    clip = _clip("en-US", "welcome")
    for played in (clip, trim_lead(clip, 8000)):
        for lead in (0, 77):
            sf = _heard(np.zeros(4000 + lead), played, np.zeros(4000))
            match = PromptSearch(prompt.print, 0).poll(sf)
            assert match is not None
            sound_at = match.frame * HOP_SAMPLES - prompt.sound_lead_samples
            expected = 4000 + lead + sound_start(played, 8000)
            assert abs(sound_at - expected) <= 2 * HOP_SAMPLES, (played.size, lead)


def test_a_heard_sample_is_timed_at_its_packets_arrival_before_the_jitter_buffer() -> None:
    ctx = CallContext(None, None, None, Path("."), None, None)  # type: ignore[arg-type]
    ctx.frame_times = [100.0 + 0.02 * k for k in range(50)]  # frames left the buffer then
    ctx.stats = StreamStats(50, 0, 1.0, 50, 0.0, jitter_buffer_ms=60.0)
    assert ctx.rtp_time(5 * 160 + 7) == pytest.approx(100.1 - 0.06)
    assert ctx.rtp_time(-80) == pytest.approx(100.0 - 0.01 - 0.06)  # before the ear came
def test_the_offsets_before_the_stream_are_scored_at_once(index: PromptIndex,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The first prompt's offsets before the stream began (up to EARLY_FRAMES) are scored in
    one pass, not one offset at a time (that was a harness call's largest analysis cost),
    and each is the BER of the prompt's heard tail."""
    from ivr.harness import fingerprint

    menu = _clip("en-US", "language_menu")
    sf = _heard(menu[1200:], np.zeros(4000))
    prompt = index.get("en-US", "language_menu")
    assert prompt is not None
    passes: list[int] = []
    real = fingerprint._errors_by_offset

    def counting(*args):  # type: ignore[no-untyped-def]
        passes.append(1)
        return real(*args)

    monkeypatch.setattr(fingerprint, "_errors_by_offset", counting)
    early = ber_by_offset(sf, prompt.print, -EARLY_FRAMES, 0)
    assert len(passes) <= 1 and early.size == EARLY_FRAMES
    p, bits, quiet = prompt.print, sf.bits, sf.quiet
    for o in (-EARLY_FRAMES, -38, -1):  # what was heard of the prompt begun -o frames early
        tail_bits, tail_voiced = p.bits[-o:], p.voiced[-o:]
        errors = np.array([BITS if quiet[j] else bin(int(bits[j] ^ b)).count("1")
                           for j, b in enumerate(tail_bits)])
        if tail_voiced.sum() >= MIN_HEARD_SHARE * p.voiced.sum():
            want = errors[tail_voiced].sum() / (tail_voiced.sum() * BITS)
        else:
            want = 1.0
        assert early[o + EARLY_FRAMES] == pytest.approx(want), o


def test_heard_silence_is_not_transformed_and_sound_is_fingerprinted_as_before(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A heard window below HEARD_SILENCE_DBFS scores as all bits wrong whatever its bits,
    so the stream does not transform it (a call hears seconds of it); the frames of sound
    get the bits a whole-clip fingerprint gives them."""
    from ivr.harness import fingerprint

    clip = _clip("en-US", "welcome")
    pcm = np.concatenate([np.zeros(8000, np.int16), clip, np.zeros(8000, np.int16)])
    rows: list[int] = []
    real = fingerprint._power

    def counting(frames):  # type: ignore[no-untyped-def]
        rows.append(frames.shape[0])
        return real(frames)

    monkeypatch.setattr(fingerprint, "_power", counting)
    sf = StreamFingerprint()
    for i in range(0, pcm.size, 800):
        sf.feed(pcm[i: i + 800])
    sound = ~sf.quiet
    assert sum(rows) <= sound.sum() + 2 * len(rows)  # sound, each frame before it, the last
    assert sf.quiet[:200].all() and sf.quiet[-200:].all()
    whole, _ = fingerprint._band_energies(pcm)  # every window transformed
    ref = fingerprint._bits(whole[1:], whole[0])
    assert (sf.bits[1:][sound[1:]] == ref[sound[1:]]).all()


def test_what_was_fed_is_analysed_once_when_read_as_if_fed_whole(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A call's pump feeds every 100 ms, a step reads every 200 ms: the pieces fed between
    two reads are analysed in one pass, and the frames come out as from one piece."""
    from ivr.harness import fingerprint

    clip = _clip("en-US", "welcome")
    whole = StreamFingerprint()
    whole.feed(clip)
    assert whole.frames > 0
    passes: list[int] = []
    real = fingerprint._band_energies

    def counting(samples, skip_quiet=False):  # type: ignore[no-untyped-def]
        passes.append(1)
        return real(samples, skip_quiet)

    monkeypatch.setattr(fingerprint, "_band_energies", counting)
    pieces = StreamFingerprint()
    for i in range(0, clip.size, 800):
        pieces.feed(clip[i: i + 800])
        if (i // 800) % 4 == 3:
            assert pieces.frames > 0  # a read: what was fed so far is analysed
    reads = clip.size // 3200
    assert len(passes) == reads
    sound = ~whole.quiet
    assert pieces.frames == whole.frames and (pieces.quiet == whole.quiet).all()
    assert (pieces.bits[sound] == whole.bits[sound]).all()
    assert len(passes) == reads + 1  # the last pieces, analysed for the reads above


def test_the_ear_times_each_20_ms_frame_of_a_batch_the_bridge_hands_over() -> None:
    """The ear's port takes 100 ms at a time (five bridge ticks, one call into Python):
    each 20 ms frame of a batch is timed 20 ms before the one after it, the last at the
    hand-over."""
    from media.probe import EAR_FRAME_MS, Ear

    ear = Ear()
    frames = EAR_FRAME_MS // 20
    pcm = np.arange(frames * 160, dtype="<i2")
    ear.push(pcm.tobytes())
    ear.push(np.zeros(160, "<i2").tobytes())  # a lone 20 ms frame
    samples, times = ear.drain()
    assert samples.size == (frames + 1) * 160 and (samples[: pcm.size] == pcm).all()
    assert len(times) == frames + 1
    gaps = np.diff(times[:frames])
    assert gaps == pytest.approx([0.02] * (frames - 1))
    assert times[frames] >= times[frames - 1]


def test_a_long_prompt_is_scored_whole_only_where_its_opening_fits(
        index: PromptIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over audio that is another prompt, a long prompt's search scores its 0.5 s opening
    only; where it is played, it is scored whole around there and found."""
    from ivr.harness import search

    prompt = index.get("en-US", "main_menu")
    assert prompt is not None and prompt.print.frames > 500
    scored: list[int] = []
    real = search.ber_by_offset

    def recording(heard, p, start=0, stop=None):  # type: ignore[no-untyped-def]
        out = real(heard, p, start, stop)
        if p.frames == prompt.print.frames:
            scored.append(out.size)
        return out

    monkeypatch.setattr(search, "ber_by_offset", recording)
    other = _heard(np.zeros(2000), _clip("zh-CN", "main_menu"), np.zeros(4000))
    s = PromptSearch(prompt.print, 0)
    assert s.poll(other) is None and scored == []
    played = _heard(np.zeros(2000), _clip("en-US", "main_menu"), np.zeros(4000))
    match = PromptSearch(prompt.print, 0).poll(played)
    assert match is not None and match.ber < 0.2
    assert 0 < sum(scored) < 100  # offsets near the match only


def test_a_prompt_the_hang_up_cut_short_is_found_once_the_call_is_over(index: PromptIndex
                                                                        ) -> None:
    """The IVR says goodbye and hangs up: the last 200 ms of it may never reach the harness
    (the ear's batch the bridge had not handed over, the jitter buffer). Once the call is
    over the prompt is found where it began, scored on what was heard; more cut is not."""
    prompt = index.get("en-US", "goodbye")
    assert prompt is not None
    whole = _clip("en-US", "goodbye")
    dropped = np.concatenate([whole[:8000], whole[8160:]])  # a 20 ms frame lost in it
    for clip, cut_ms, found in ((whole, 20, True), (whole, 100, True), (whole, 180, True),
                                (dropped, 60, True), (whole, 260, False)):
        sf = _heard(np.zeros(8000), clip[: clip.size - cut_ms * 8])
        match = PromptSearch(prompt.print, 0).poll(sf, final=True)
        assert (match is not None) == found, cut_ms
        if match is not None:  # where it began (8000 samples of silence, lead trimmed)
            assert abs(match.frame * HOP_SAMPLES - 8000) < 8000 * 0.1 and match.ber < 0.15


def test_another_prompt_is_not_found_and_near_twins_are_told_apart(index: PromptIndex
                                                                  ) -> None:
    sf = _heard(np.zeros(2000), _clip("en-US", "sales"), np.zeros(4000))
    assert _search(sf, index, "en-US:welcome")[0] is None
    assert _search(sf, index, "zh-CN:main_menu")[0] is None
    sales, prompt = _search(sf, index, "en-US:sales")
    assert sales is not None
    support = index.get("en-US", "support")
    assert support is not None
    # "Connecting you to support..." differs by a word: it fits worse at the same place
    assert ber_at(sf, support.print, sales.frame) > sales.ber + 0.05
    best = index.best_at(sf, sales.frame, length_frames=prompt.print.frames)
    assert best is not None and best[1].key == "en-US:sales"


def test_the_twin_check_scores_whole_only_prompts_whose_opening_fits(
        index: PromptIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """best_at after a match (every expect_prompt) names the prompt played, twins included,
    while scoring whole only the few prompts whose first 0.5 s fit there, not every prompt
    of about that length (that was most of a harness call's analysis CPU)."""
    from ivr.harness import prompt_index

    sf = _heard(np.zeros(2000), _clip("en-US", "sales"), np.zeros(800),
                _clip("en-US", "support"), np.zeros(4000))
    scored: list[str] = []
    real = prompt_index.ber_at

    def counting(heard, prompt, frame, slack=25):  # type: ignore[no-untyped-def]
        scored.append("x")
        return real(heard, prompt, frame, slack)

    monkeypatch.setattr(prompt_index, "ber_at", counting)
    for key in ("en-US:sales", "en-US:support"):
        prompt = index.get(*key.split(":"))
        assert prompt is not None
        at = int(np.argmin(ber_by_offset(sf, prompt.print, 0)))  # where it was played
        similar = sum(1 for p in index.prompts
                      if abs(p.print.frames - prompt.print.frames) <= 0.3 * prompt.print.frames)
        scored.clear()
        best = index.best_at(sf, at, slack=8, length_frames=prompt.print.frames)
        assert best is not None and best[1].key == key
        assert similar >= 10 and len(scored) <= 5, (similar, len(scored))


def test_silence_and_a_steady_tone_are_no_prompt(index: PromptIndex) -> None:
    t = np.arange(16000) / 8000
    tone = (8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
    sf = _heard(np.zeros(8000), tone, np.zeros(40000))
    hits = index.identify(sf, 0, 0.25)
    assert [label for _, label in hits if "beep" not in label] == []


def test_what_was_heard_is_named_in_order_with_a_prompt_cut_short(index: PromptIndex) -> None:
    zh = _clip("zh-CN", "language_menu")
    sf = _heard(np.zeros(1000), _clip("en-US", "language_menu"), np.zeros(400),
                zh[: zh.size * 2 // 3])
    labels = [label for _, label in index.identify(sf, 0, 0.25)]
    assert labels[0] == "en-US:language_menu"
    assert labels[1].startswith("zh-CN:language_menu (first ")


def test_a_new_prompt_set_is_recognised_as_loaded_without_training(tmp_path: Path) -> None:
    s = tmp_path / "fr-FR"
    s.mkdir()
    (s / "bonjour.wav").write_bytes((PROMPTS / "en-US" / "goodbye.wav").read_bytes())
    (s / "manifest.yaml").write_text(
        "language: fr-FR\nprompts:\n  bonjour: {text: 'Au revoir.', file: bonjour.wav}\n")
    idx = PromptIndex.load(tmp_path)
    assert idx.sets() == {"fr-FR"}
    sf = _heard(np.zeros(3000), _clip("en-US", "goodbye"), np.zeros(3000))
    assert _search(sf, idx, "fr-FR:bonjour")[0] is not None


def test_fingerprints_are_cached_on_disk_until_a_wav_changes(
        index: PromptIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second load reads the fingerprints from the cache (a harness start spent ~1.5 s of
    CPU on them); a WAV replaced is fingerprinted again; a broken cache is ignored."""
    from ivr.harness import prompt_index

    prompts, cache = tmp_path / "prompts", tmp_path / "cache"
    s = prompts / "fr-FR"
    s.mkdir(parents=True)
    for name in ("goodbye", "welcome"):
        (s / f"{name}.wav").write_bytes((PROMPTS / "en-US" / f"{name}.wav").read_bytes())
    (s / "manifest.yaml").write_text(
        "language: fr-FR\nprompts:\n  a: {file: goodbye.wav}\n  b: {file: welcome.wav}\n")
    computed: list[int] = []
    real = prompt_index.fingerprint

    def counting(pcm):  # type: ignore[no-untyped-def]
        computed.append(1)
        return real(pcm)

    monkeypatch.setattr(prompt_index, "fingerprint", counting)
    first = PromptIndex.load(prompts, cache)
    assert len(computed) == 2
    again = PromptIndex.load(prompts, cache)
    assert len(computed) == 2  # both from the cache
    for a, b in zip(first.prompts, again.prompts, strict=True):
        assert (a.print.bits == b.print.bits).all() and (a.print.voiced == b.print.voiced).all()
        # and what key -> prompt is timed by: where the print and the prompt's sound begin
        assert (a.print.start_sample, a.sound_sample) == (b.print.start_sample, b.sound_sample)
        assert a.print.start_sample > 0
    (s / "welcome.wav").write_bytes((PROMPTS / "en-US" / "sales.wav").read_bytes())
    changed = PromptIndex.load(prompts, cache)
    assert len(computed) == 3
    sales = index.get("en-US", "sales")
    assert sales is not None
    got = changed.get("fr-FR", "b")
    assert got is not None and (got.print.bits == sales.print.bits).all()
    for f in cache.iterdir():
        f.write_bytes(b"not a cache")
    before = len(computed)
    PromptIndex.load(prompts, cache)
    assert len(computed) == before + 2


def test_prompt_text_is_resolved_by_similarity_with_digits_read_as_words(
        index: PromptIndex) -> None:
    assert text_similarity("press two for support", "For support, press 2.") == 0.5
    assert text_similarity("press 2 for support",
                           "For sales, press 1. For support, press 2.") >= 0.6
    found = index.resolve_text("for sales press 1 for support press 2", 0.6)
    assert found[0][1].key == "en-US:main_menu"
    assert index.resolve_text("the weather in Paris today", 0.6) == []


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "s.yaml"
    p.write_text(text)
    return p


def test_a_valid_scenario_loads_with_short_forms(tmp_path: Path) -> None:
    s = load_scenario(_write(tmp_path, """\
name: ok
dial: sip:ivr@127.0.0.1:5060
steps:
  - expect_prompt: {set: en-US, name: welcome, within_ms: 3000}
  - press: 12
  - say: "four one"
  - expect_silence: 500
  - hangup:
  - check: {cdr.end_reason: normal, queue: sales}
"""))
    kinds = [k for k, _ in s.steps]
    assert kinds == ["expect_prompt", "press", "say", "expect_silence", "hangup", "check"]
    assert s.steps[1][1].digits == "12" and s.lines == [4, 5, 6, 7, 8, 9]


def test_scenario_errors_name_file_line_and_step_all_at_once(tmp_path: Path) -> None:
    path = _write(tmp_path, """\
name: bad
dial: sip:ivr@127.0.0.1
steps:
  - expect_prompt: {set: en-US}
  - press: "1x"
  - shout: "hello"
  - expect_hangup: {within_s: 5, cause: 100}
  - check: {agent: 1001}
  - play: missing.wav
""")
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    lines = str(err.value).splitlines()
    assert len(lines) == 6, lines
    assert lines[0].startswith(f"{path}:4: step 1 (expect_prompt):") and "name" in lines[0]
    assert lines[1].startswith(f"{path}:5: step 2 (press):") and "'X'" in lines[1]
    assert lines[2].startswith(f"{path}:6: step 3:") and "unknown step 'shout'" in lines[2]
    assert lines[3].startswith(f"{path}:7: step 4 (expect_hangup): cause")
    assert lines[4].startswith(f"{path}:8: step 5 (check):") and "'agent'" in lines[4]
    assert lines[5].startswith(f"{path}:9: step 6 (play): no such file 'missing.wav'")


def test_unknown_top_level_fields_and_prompts_are_named(tmp_path: Path,
                                                        index: PromptIndex) -> None:
    with pytest.raises(ScenarioError, match=r"s.yaml:2: dail: Extra inputs"):
        load_scenario(_write(tmp_path, "name: x\ndail: sip:a@b\nsteps: [hangup: null]\n"))
    s = load_scenario(_write(tmp_path, """\
name: x
dial: sip:ivr@127.0.0.1
steps:
  - expect_prompt: {set: fr-FR, name: welcome}
  - expect_prompt: {set: en-US, name: bienvenue}
"""))
    problems = check_prompts(s, {p.key for p in index.prompts}, index.sets())
    assert problems[0].endswith("step 1 (expect_prompt): no prompt set 'fr-FR' "
                                "(sets: en-US, zh-CN)")
    assert problems[1].endswith("step 2 (expect_prompt): set 'en-US' has no prompt "
                                "'bienvenue'")


def test_the_shipped_scenarios_check(index: PromptIndex) -> None:
    for path in sorted((ROOT / "tests" / "scenarios").glob("*.yaml")):
        s = load_scenario(path)
        assert check_prompts(s, {p.key for p in index.prompts}, index.sets()) == []


def test_tone_detection_and_dtmf_generation() -> None:
    t = np.arange(8000) / 8000
    tone = (6000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    assert analysis.longest_run(analysis.tone_frames(tone, 440))[1] >= 48
    assert not analysis.tone_frames(tone, 1000).any()
    keys = analysis.dtmf_pcm("15#")
    assert keys.size == 8000 * (3 * 100 + 4 * 100) // 1000
    spectrum = np.abs(np.fft.rfft(keys[800:1600].astype(float)))
    peaks = sorted(np.argsort(spectrum)[-2:] * 8000 / 800)
    assert abs(peaks[0] - 697) <= 10 and abs(peaks[1] - 1209) <= 10


def test_emodel_mos_falls_with_loss_and_delay() -> None:
    clean = analysis.emodel_mos(0.0, 40)
    assert 4.3 <= clean <= 4.5  # G.711 without impairment: R about 92
    assert analysis.emodel_mos(0.02, 40) < clean
    assert analysis.emodel_mos(0.0, 400) < analysis.emodel_mos(0.0, 100)
    assert analysis.emodel_mos(0.5, 40) < 2.0


def test_junit_names_the_failed_step() -> None:
    ok = CallResult("a.yaml", "passes", ok=True, duration_s=1.0)
    bad = CallResult("b.yaml", "fails", failure="expected en-US:sales; heard silence",
                     failed_step="step 2 (expect_prompt, line 7)", duration_s=2.0)
    bad.steps = [StepResult(1, "press", "step 1 (press, line 6)", True, 10, 0, "1"),
                 StepResult(2, "expect_prompt", "step 2 (expect_prompt, line 7)", False, 10,
                            3000, "expected en-US:sales; heard silence")]
    root = ET.fromstring(junit_xml([ok, bad]).split("?>", 1)[1])
    assert (root.get("tests"), root.get("failures")) == ("2", "1")
    failure = root.findall("testcase")[1].find("failure")
    assert failure is not None
    assert failure.get("message") == ("step 2 (expect_prompt, line 7): expected en-US:sales; "
                                      "heard silence")


def test_check_passes_the_shipped_scenarios_and_fails_a_bad_one_with_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from ivr.harness.cli import main

    monkeypatch.chdir(tmp_path)  # the shipped prompts are found from anywhere
    assert main(["check", str(ROOT / "tests" / "scenarios")]) == 0
    assert "english_sales.yaml: ok (9 steps)" in capsys.readouterr().out
    bad = _write(tmp_path, "name: b\ndial: sip:ivr@127.0.0.1\nsteps:\n  - press: '#x'\n")
    assert main(["check", str(bad)]) == 2
    assert capsys.readouterr().err.startswith(f"{bad}:4: step 1 (press): ")


def test_a_load_report_adds_up_its_calls_durations_failed_calls_included() -> None:
    from ivr.harness.load import LoadStats

    stats = LoadStats()
    stats.add({"ok": True, "duration_s": 3.5, "sip_call_id": "a"})
    stats.add({"ok": False, "duration_s": 1.25, "failure": "x", "failed_step": "dial"})
    stats.add({"ok": False, "failure": "harness error", "failed_step": "harness"})
    assert stats.as_dict()["call_seconds"] == 4.8  # 4.75, to the report's 0.1 s
