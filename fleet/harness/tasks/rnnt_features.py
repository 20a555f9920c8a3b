"""RNN-T feature extraction, the reference's `FilterbankFeatures` with `[input_eval]` settings.

Part of the timed path (the reference SUT runs it per query). For one waveform x (float32):
pre-emphasis 0.97; STFT with n_fft 512, hop 160, a symmetric (periodic=False) Hann window of
320 samples, centred with reflect padding; power |X|^2 plus the deterministic dither 1e-5^2;
80 slaney mel filters (librosa's defaults, computed here in numpy); log(x + 1e-20); frame
splicing 3 (frames t, t+1, t+2 stacked, zero past the end, every 3rd kept); per-feature
normalisation over the valid frames with the unbiased std + 1e-5; truncated to
ceil(ceil(len/160)/3) frames. Output (T, 1, 240), the encoder's time-major layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FeatureParams:
    sample_rate: int = 16_000
    win_length: int = 320  # window_size 0.02 s
    hop_length: int = 160  # window_stride 0.01 s
    n_fft: int = 512
    n_mels: int = 80
    preemph: float = 0.97
    dither: float = 1e-5
    frame_splicing: int = 3
    std_floor: float = 1e-5

    @property
    def features(self) -> int:
        return self.n_mels * self.frame_splicing

    def frames(self, samples: int) -> int:
        """Encoder input frames for a waveform of `samples` samples (the reference's get_seq_len)."""
        return math.ceil(math.ceil(samples / self.hop_length) / self.frame_splicing)


def _hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    f = np.asarray(f, dtype=np.float64)
    mels = f / (200.0 / 3)
    log_part = f >= 1000.0
    mels[log_part] = 15.0 + np.log(f[log_part] / 1000.0) / (np.log(6.4) / 27.0)
    return mels


def _mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    f = m * (200.0 / 3)
    log_part = m >= 15.0
    f[log_part] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (m[log_part] - 15.0))
    return f


def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                fmax: float | None = None) -> np.ndarray:
    """(n_mels, 1 + n_fft//2) triangular filters, slaney-normalised: librosa.filters.mel's defaults."""
    fmax = sample_rate / 2 if fmax is None else fmax
    fft_hz = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    edges = _mel_to_hz(np.linspace(_hz_to_mel(np.array([fmin]))[0], _hz_to_mel(np.array([fmax]))[0],
                                   n_mels + 2))
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    rising = -ramps[:-2] / widths[:-1, None]
    falling = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(rising, falling))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]  # equal area per filter
    return weights.astype(np.float32)


class FeatureExtractor:
    """Waveform -> normalised, spliced log-mel frames (torch, CPU or the backend's device)."""

    def __init__(self, params: FeatureParams | None = None, device: Any = "cpu") -> None:
        import torch

        self.torch = torch
        self.params = p = params or FeatureParams()
        self.device = torch.device(device)
        self.window = torch.hann_window(p.win_length, periodic=False, dtype=torch.float32).to(self.device)
        self.filters = torch.from_numpy(mel_filters(p.sample_rate, p.n_fft, p.n_mels)).to(self.device)

    def __call__(self, waveform: np.ndarray) -> tuple[Any, Any]:
        """(features (T, 1, F), lengths int32 (1,)) for one float32 waveform."""
        torch, p = self.torch, self.params
        x = torch.from_numpy(waveform).to(self.device).unsqueeze(0)
        frames = p.frames(x.shape[1])
        if p.preemph:
            x = torch.cat((x[:, :1], x[:, 1:] - p.preemph * x[:, :-1]), dim=1)
        spec = torch.stft(x, n_fft=p.n_fft, hop_length=p.hop_length, win_length=p.win_length,
                          window=self.window, center=True, pad_mode="reflect", return_complex=True)
        power = torch.view_as_real(spec).pow(2).sum(-1)
        if p.dither > 0:
            power = power + p.dither**2
        x = torch.log(torch.matmul(self.filters, power) + 1e-20)
        if p.frame_splicing > 1:
            stacked = [x]
            for shift in range(1, p.frame_splicing):
                later = torch.zeros_like(x)
                later[:, :, :-shift] = x[:, :, shift:]
                stacked.append(later)
            x = torch.cat(stacked, dim=1)[:, :, :: p.frame_splicing]
        valid = x[:, :, :frames]
        mean = valid.mean(dim=2, keepdim=True)
        std = valid.std(dim=2, keepdim=True) + p.std_floor
        x = ((x - mean) / std)[:, :, :frames]
        return x.permute(2, 0, 1).contiguous(), torch.tensor([frames], dtype=torch.int32, device=self.device)
