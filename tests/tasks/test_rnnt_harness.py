"""RNN-T (LibriSpeech) through the real harness and the pytorch backend: synth, features and
greedy decoding against the official reference code, WER against the official
accuracy_eval.py, a shuffled order and wrong feature parameters that must raise WER, dataset
and checkpoint faults, scenarios, TEST01/TEST05."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from taskhelpers import make_harness, paced_compliance_runs

from fleet.harness.accuracy.librispeech import normalize, word_error_rate
from fleet.harness.backends import BackendOptions, open_backend
from fleet.harness.errors import HarnessError
from fleet.harness.tasks import get_task, librispeech
from fleet.harness.tasks.rnnt_features import FeatureExtractor, FeatureParams, mel_filters
from fleet.harness.tasks.rnnt_model import GreedyDecoder, load_rnnt, text

pytestmark = pytest.mark.timeout(900)

TASK = "rnnt"
# Per utterance in Offline runs whose performance TEST01/TEST05 compare (5 % for TEST05): a
# small-model utterance decodes in ~15 ms, and unpaced runs of one second differed by 7 %.
PACE_S = 0.1
RNNT_DIR = "speech_recognition/rnnt"


@pytest.fixture(scope="module")
def assets(asset_shelf) -> Any:
    return asset_shelf.get(TASK, 6, "small")


@pytest.fixture(scope="module")
def task_on(assets) -> Any:
    task = get_task(TASK)
    task.open(assets.dataset, assets.root / "unused-cache")
    return task


@pytest.fixture(scope="module")
def backend(assets, task_on) -> Any:
    opened = open_backend("pytorch", assets.model, task_on, BackendOptions(threads=1))
    yield opened
    opened.close()


@pytest.fixture(scope="module")
def transcripts(task_on, backend) -> list[list[int]]:
    """The harness path's label ids per utterance: the task's infer over the pytorch backend."""
    def decode(i: int) -> list[int]:
        feed = {"waveform": [task_on.load_sample(i)["waveform"]]}
        return task_on.infer(backend, feed, 1)["transcript"][0].tolist()

    return [decode(i) for i in range(task_on.total_sample_count)]


def _log(tmp: Path, payloads: list[list[int]], order: list[int] | None = None) -> Path:
    order = order if order is not None else list(range(len(payloads)))
    log = tmp / "mlperf_log_accuracy.json"
    log.write_text(json.dumps([
        {"seq_id": q, "qsl_idx": q, "data": np.asarray(payloads[i], "<i8").tobytes().hex()}
        for q, i in enumerate(order)]))
    return log


def test_synth_writes_the_reference_layout_with_diverse_transcripts(assets) -> None:
    entries = json.loads((assets.dataset / librispeech.MANIFEST).read_text())
    assert len(entries) == 7 and [e["original_duration"] > 15 for e in entries].count(True) == 1
    utterances = librispeech.read_manifest(assets.dataset)
    assert len(utterances) == 6
    for u in utterances:
        assert u.audio.startswith("dev-clean-wav/") and (assets.dataset / u.audio).is_file()
    import soundfile

    info = soundfile.info(str(assets.dataset / utterances[0].audio))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    words = [len(u.transcript.split()) for u in utterances]
    assert len(set(words)) >= 2 and len(set("".join(u.transcript for u in utterances))) >= 8
    checkpoint = __import__("torch").load(str(assets.model), weights_only=True)
    keys = set(checkpoint["state_dict"])
    assert {"joint_net.0.weight", "joint_net.3.weight", "audio_preprocessor.featurizer.fb",
            "encoder.pre_rnn.lstm.weight_ih_l1", "encoder.post_rnn.lstm.weight_ih_l2",
            "prediction.embed.weight", "prediction.dec_rnn.lstm.weight_hh_l1"} <= keys
    assert assets.marker["shuffled_accuracy"] < 50


def test_an_utterance_heard_as_nothing_is_drawn_again(tmp_path: Path) -> None:
    from fleet.harness.synthetic.librispeech import MAX_REDRAWS, write_librispeech

    calls = iter(range(1000))
    words = ["ab cd", "efg", "hij klm nop", "qr"]

    def sometimes_deaf(waveform: np.ndarray) -> str:  # every third draw is heard as silence
        n = next(calls)
        return "" if n % 3 == 1 else words[n % 4] + " " + "stuvwxyz"[n % 8]

    report = write_librispeech(tmp_path / "a", 6, 0, sometimes_deaf)
    assert report.utterances == 6 and all(report.word_counts)
    transcripts = [u.transcript for u in librispeech.read_manifest(tmp_path / "a")]
    assert len(transcripts) == 6 and all(transcripts)
    with pytest.raises(ValueError, match=f"utterance 0 as nothing in {MAX_REDRAWS} draws"):
        write_librispeech(tmp_path / "b", 6, 0, lambda waveform: " ")


def test_the_harness_path_decodes_the_teacher_transcripts(task_on, transcripts) -> None:
    expected = [normalize(u.transcript) for u in librispeech.read_manifest(task_on._dataset)]
    assert [" ".join(text(t).split()) for t in transcripts] == expected


def _official_decode(official: Path, model: Path, dataset: Path, wavs: list[str], tmp: Path) -> dict:
    """Transcripts and features from the official SUT's code path, run in its own process.

    Real librosa builds the filterbank (the test extra). One shim, nothing else: torch.stft
    without return_complex returns the old real view, as the reference's torch did (today's
    torch refuses the call)."""
    script = tmp / "official_rnnt.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys, tomllib
        import numpy as np, soundfile, torch
        _stft = torch.stft
        def old_stft(*args, return_complex=None, **kwargs):
            if return_complex is None:
                return torch.view_as_real(_stft(*args, return_complex=True, **kwargs))
            return _stft(*args, return_complex=return_complex, **kwargs)
        torch.stft = old_stft
        root = {str(official / RNNT_DIR)!r}
        sys.path.insert(0, root + "/pytorch")
        from decoders import ScriptGreedyDecoder
        from model_separable_rnnt import RNNT
        from preprocessing import AudioPreprocessing
        config = tomllib.loads(open(root + "/pytorch/configs/rnnt.toml").read())
        state = torch.load({str(model)!r}, map_location="cpu")["state_dict"]
        state = {{k.replace("joint_net", "joint.net"): v for k, v in state.items()}}
        del state["audio_preprocessor.featurizer.fb"], state["audio_preprocessor.featurizer.window"]
        rnnt = dict(config["rnnt"])
        rnnt["encoder_n_hidden"] = state["encoder.pre_rnn.lstm.weight_hh_l0"].shape[1]
        rnnt["pred_n_hidden"] = state["prediction.embed.weight"].shape[1]
        rnnt["joint_n_hidden"] = state["joint.net.0.weight"].shape[0]
        model = RNNT(feature_config=config["input_eval"], rnnt=rnnt, num_classes=29)
        model.load_state_dict(state, strict=True)
        model.eval()
        model = torch.jit.script(model)
        decoder = ScriptGreedyDecoder(28, model)
        pre = AudioPreprocessing(**config["input_eval"])
        pre.eval()
        out = {{"transcripts": [], "features": []}}
        for wav in {wavs!r}:
            samples, _ = soundfile.read({str(dataset)!r} + "/" + wav, dtype="float32")
            x = torch.from_numpy(samples).unsqueeze(0)
            n = torch.tensor([samples.shape[0]], dtype=torch.int64)
            with torch.no_grad():
                feature, length = pre.forward((x, n))
                feature = feature.permute(2, 0, 1)
                _, _, transcript = decoder.forward(feature, length)
            out["transcripts"].append(transcript[0])
            out["features"].append(feature[:, 0, :].tolist())
        print(json.dumps(out))
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_features_and_greedy_decode_match_the_official_reference_code(official_inference: Path, assets,
                                                                      task_on, transcripts, tmp_path) -> None:
    utterances = librispeech.read_manifest(assets.dataset)
    official = _official_decode(official_inference, assets.model, assets.dataset,
                                [u.audio for u in utterances], tmp_path)
    assert official["transcripts"] == transcripts
    features = FeatureExtractor()
    for i, expected in enumerate(official["features"]):
        ours, length = features(task_on.load_sample(i)["waveform"])
        assert int(length[0]) == len(expected)
        np.testing.assert_allclose(ours[:, 0, :].numpy(), np.asarray(expected, np.float32),
                                   atol=2e-4, rtol=1e-4)


def test_mel_filters_are_librosas() -> None:
    """The reference's filterbank is librosa.filters.mel with its defaults (slaney scale and norm)."""
    import librosa

    for sr, n_fft, n_mels, fmin, fmax in ((16000, 512, 80, 0.0, None), (16000, 512, 64, 20.0, 7600.0),
                                          (8000, 256, 40, 0.0, None)):
        theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)
        ours = mel_filters(sr, n_fft, n_mels, fmin, fmax)
        assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-8)


def test_mel_filters_are_slaney_triangles() -> None:
    fb = mel_filters(16000, 512, 80)
    assert fb.shape == (80, 257) and fb.dtype == np.float32 and (fb >= 0).all()
    freqs = np.linspace(0, 8000, 257)
    peaks = freqs[fb.argmax(axis=1)]
    assert np.all(np.diff(peaks) >= 0) and peaks[0] < 100 and peaks[-1] > 7000
    # Slaney normalisation: each triangle's area over Hz is 1, up to the 31.25 Hz bin grid
    # (filters narrower than a few bins, below ~1 kHz, sample their triangle coarsely).
    areas = fb.sum(axis=1) * (freqs[1] - freqs[0])
    assert np.allclose(areas, 1.0, atol=0.12) and np.allclose(areas[40:], 1.0, atol=0.02)


def official_wer(official: Path, log: Path, dataset: Path) -> str:
    """stdout of the official accuracy_eval.py (unidecode and inflect come from the test extra)."""
    script = official / RNNT_DIR / "accuracy_eval.py"
    proc = subprocess.run([sys.executable, str(script), "--log_dir", str(log.parent), "--dataset_dir",
                           str(dataset), "--manifest", str(dataset / librispeech.MANIFEST)],
                          capture_output=True, text=True, timeout=300, cwd=script.parent)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_wer_agrees_with_the_official_accuracy_eval(official_inference: Path, assets, task_on, transcripts,
                                                    tmp_path: Path) -> None:
    good = _log(tmp_path, transcripts)
    ours_good = task_on.accuracy(good, assets.dataset).text
    assert official_wer(official_inference, good, assets.dataset) == ours_good
    assert task_on.accuracy(good, assets.dataset).value == 100.0
    broken = [[*t[:-3], 5, 0, 7] for t in transcripts]  # changed tails: some words wrong
    shuffled = _log(tmp_path, broken, order=[1, 0, 2, 3, 5, 4])
    ours = task_on.accuracy(shuffled, assets.dataset)
    assert official_wer(official_inference, shuffled, assets.dataset) == ours.text
    assert ours.value < 60


def test_transcript_normalisation_agrees_with_the_official_cleaners(official_inference: Path,
                                                                    tmp_path: Path) -> None:
    samples = ["Mr. Smith paid $3.50 for 2 apples & a pear on the 3rd",
               "IT'S 1995, said Dr. Jones -- at 8:30!", "the 100,000 men + 7 boys", "Café   naïve 0.5",
               "St. Paul's Co. Ltd. 2000 2005 1900 1234567891"]
    dataset = tmp_path / "norm"
    dataset.mkdir()
    manifest = [{"files": [{"fname": "x.wav", "speed": 1, "duration": 1.0}], "original_duration": 1.0,
                 "transcript": s}
                for s in samples]
    (dataset / librispeech.MANIFEST).write_text(json.dumps(manifest))
    script = tmp_path / "norm.py"
    script.write_text(textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {str(official_inference / RNNT_DIR / "pytorch")!r})
        from parts.manifest import Manifest
        labels = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
        m = Manifest({str(dataset)!r}, [{str(dataset / librispeech.MANIFEST)!r}], labels, len(labels),
                     normalize=True, max_duration=15.0)
        print(json.dumps(["".join(labels[i] for i in e["transcript"]) for e in m]))
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [normalize(s) for s in samples] == json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("wrong", ["shuffled order", "hop 0.0125 s", "no pre-emphasis", "no frame splicing"])
def test_a_shuffled_order_or_a_wrong_feature_parameter_raises_wer(assets, task_on, backend, transcripts,
                                                                  wrong: str) -> None:
    references = [normalize(u.transcript) for u in librispeech.read_manifest(assets.dataset)]
    if wrong == "shuffled order":
        hypotheses = [text(transcripts[(i + 1) % len(transcripts)]) for i in range(len(transcripts))]
    else:
        params = {"hop 0.0125 s": replace(FeatureParams(), hop_length=200),
                  "no pre-emphasis": replace(FeatureParams(), preemph=0.0),
                  "no frame splicing": replace(FeatureParams(), frame_splicing=1)}[wrong]
        model = load_rnnt(assets.model)
        if params.frame_splicing == 1:  # the encoder takes 240 features: repeat the 80 three times
            extractor = FeatureExtractor(params)

            def features(w: np.ndarray) -> Any:
                x, n = extractor(w)
                x, n = x[:: 3], (n + 2) // 3
                return x.repeat(1, 1, 3), n
        else:
            features = FeatureExtractor(params)
        decoder = GreedyDecoder(model.encoder, model.prediction, model.joint)
        hypotheses = [text(decoder(*features(task_on.load_sample(i)["waveform"])))
                      for i in range(task_on.total_sample_count)]
    wer = word_error_rate(hypotheses, references)
    print(wrong, "WER", wer)
    assert wer > 0.5


def test_offline_and_singlestream_score_the_teacher_and_pass_compliance(assets, tmp_path: Path) -> None:
    from fleet.harness.manifest import MANIFEST

    entries = paced_compliance_runs(TASK, assets, tmp_path, "SingleStream", PACE_S, 1.5 / PACE_S)
    assert entries[("Offline", "performance")]["backend"] == "pytorch"  # the task's own: none was named
    for scenario in ("Offline", "SingleStream"):
        assert entries[(scenario, "accuracy")]["accuracy"] == pytest.approx(100.0)
        text_ = (tmp_path / TASK / scenario / "accuracy" / "accuracy.txt").read_text()
        assert text_.startswith("Word Error Rate: 0.0%, accuracy=100.0%")
    assert json.loads((tmp_path / MANIFEST).read_text())["versions"]["torch"].startswith("2.13.0")


def test_server_runs_on_the_pytorch_backend(assets, tmp_path: Path) -> None:
    harness = make_harness(TASK, assets.root, assets.marker, tmp_path, ["Server"], ["performance"])
    try:
        entry = harness.run_one("Server", "performance")
    finally:
        harness.backend.close()
    assert entry["outcome"] == "ok", entry["error"]
    assert entry["result_validity"] == "VALID"


@pytest.mark.parametrize("scenario", ["MultiStream"])
def test_scenarios_v31_does_not_have_are_refused(assets, tmp_path: Path, scenario: str) -> None:
    with pytest.raises(HarnessError, match=f"rnnt has no {scenario} scenario in v3.1"):
        make_harness(TASK, assets.root, assets.marker, tmp_path, [scenario], ["performance"])


def test_backends_without_a_model_are_refused_in_one_line(assets, tmp_path: Path) -> None:
    with pytest.raises(HarnessError, match=r"rnnt has no onnxruntime model .*use backend pytorch for rnnt"):
        open_backend("onnxruntime", assets.model, get_task(TASK), BackendOptions())
    with pytest.raises(HarnessError, match=r"resnet50 has no pytorch model .*use backend onnxruntime"):
        open_backend("pytorch", assets.model, get_task("resnet50"), BackendOptions())


@pytest.mark.parametrize("device, message", [
    ("cuda", r"CUDA is not available to this torch 2\.13\.0\+cpu .*refusing to fall back to the CPU"),
    ("tensorrt", r"the pytorch backend runs on cpu or cuda, not 'tensorrt'"),
])
def test_the_pytorch_backend_never_falls_back_silently(assets, device: str, message: str) -> None:
    with pytest.raises(HarnessError, match=message):
        open_backend("pytorch", assets.model, get_task(TASK), BackendOptions(execution_provider=device))


def test_the_pytorch_backend_threads_versions_and_inference_mode(backend) -> None:
    import torch

    assert backend.threads == 1 and backend.pinned(torch.get_num_threads)() == 1
    assert backend.versions() == {"torch": torch.__version__}
    encoder = backend.program("encoder")
    out, lens = encoder(torch.zeros(9, 1, 240), torch.tensor([9], dtype=torch.int32))
    assert out.shape[:2] == (1, 5) and int(lens[0]) == 5
    assert out.is_inference() and not out.requires_grad
    with pytest.raises(HarnessError, match="has no part 'decoder'"):
        backend.program("decoder")


def test_the_pytorch_backend_runs_every_call_on_its_own_thread(assets, task_on) -> None:
    """One OpenMP pool per process: loading, run(), programs and pinned calls share one thread."""
    import threading

    backend = open_backend("pytorch", assets.model, task_on, BackendOptions(threads=1))
    try:
        seen = [backend.pinned(threading.get_ident)()]
        askers = [threading.Thread(target=lambda: seen.append(backend.pinned(threading.get_ident)()))
                  for _ in range(2)]  # two different SUT threads ask
        for t in askers:
            t.start()
            t.join()
        seen = set(seen)
        assert len(seen) == 1 and threading.get_ident() not in seen
        with pytest.raises(ZeroDivisionError):  # an error raised there is raised to the caller
            backend.pinned(lambda: 1 / 0)()
        assert backend.pinned(lambda: 7)() == 7  # and the thread lives on
    finally:
        backend.close()


@pytest.mark.parametrize("fault, message", [
    ("truncated", r"model .*rnnt\.pt is not an RNN-T checkpoint in the reference's format"),
    ("code", r"model .*rnnt\.pt is not an RNN-T checkpoint in the reference's format \(UnpicklingError"),
    ("missing key", r"model .*rnnt\.pt does not fit the RNN-T architecture: .*Missing key"),
])
def test_a_corrupt_checkpoint_is_one_line(assets, tmp_path: Path, fault: str, message: str) -> None:
    import pickle

    import torch

    path = tmp_path / "rnnt.pt"
    if fault == "truncated":
        path.write_bytes(assets.model.read_bytes()[:5000])
    elif fault == "code":
        torch.save({"state_dict": {}, "hook": pickle.loads}, path)
    else:
        state = torch.load(str(assets.model), weights_only=True)
        del state["state_dict"]["prediction.dec_rnn.lstm.bias_hh_l1"]
        torch.save(state, path)
    with pytest.raises(HarnessError, match=message):
        open_backend("pytorch", path, get_task(TASK), BackendOptions(threads=1))


def _copy_dataset(assets, tmp_path: Path) -> Path:
    copy = tmp_path / "librispeech"
    shutil.copytree(assets.dataset, copy)
    return copy


@pytest.mark.parametrize("fault, message", [
    ("missing", r"LibriSpeech sample 2: .*-0002\.wav is missing"),
    ("unreadable", r"LibriSpeech sample 2: .*-0002\.wav is not readable audio"),
    ("8 kHz", r"LibriSpeech sample 2: .*-0002\.wav is 8000 Hz with 1 channel\(s\), not 16 kHz mono; "
              r"convert it: sox"),
    ("manifest", r"LibriSpeech manifest .*dev-clean-wav\.json is unreadable"),
])
def test_dataset_faults_are_named_at_open(assets, tmp_path: Path, fault: str, message: str) -> None:
    import soundfile

    dataset = _copy_dataset(assets, tmp_path)
    wav = dataset / librispeech.read_manifest(dataset)[2].audio
    if fault == "missing":
        wav.unlink()
    elif fault == "unreadable":
        wav.write_bytes(b"RIFF not really a wav file")
    elif fault == "8 kHz":
        soundfile.write(str(wav), np.zeros(8000, np.float32), 8000, subtype="PCM_16")
    else:
        (dataset / librispeech.MANIFEST).write_text("[{")
    with pytest.raises(HarnessError, match=message):
        get_task(TASK).open(dataset, tmp_path / "cache")


def test_the_null_backend_runs_rnnt_without_a_model(assets, tmp_path: Path) -> None:
    from fleet.harness.runner import Harness
    from fleet.harness.spec import RunSpec

    spec = RunSpec(task=TASK, scenarios=["Offline"], modes=["performance"], backend="null",
                   dataset=str(assets.dataset), profile="smoke")
    run = Harness(spec, tmp_path, echo=lambda line: None)
    try:
        entry = run.run_one("Offline", "performance")
    finally:
        run.backend.close()
    assert entry["outcome"] == "ok" and entry["result_validity"] == "VALID"
