//! The decoded-audio value type and the limits applied to untrusted input.

/// Decoded PCM audio: `f32` samples in `[-1, 1]`, interleaved when there is more than one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Interleaved samples: frame 0 channel 0, frame 0 channel 1, ..., frame 1 channel 0, ...
    pub samples: Vec<f32>,
    /// Number of channels (at least 1).
    pub channels: u16,
    /// Frames per second.
    pub sample_rate: u32,
}

impl Audio {
    /// Number of frames (samples per channel).
    pub fn frames(&self) -> usize {
        self.samples.len() / usize::from(self.channels.max(1))
    }

    /// Length in seconds (0 for a zero sample rate).
    pub fn duration_secs(&self) -> f64 {
        if self.sample_rate == 0 {
            return 0.0;
        }
        self.frames() as f64 / f64::from(self.sample_rate)
    }

    /// A mono copy: each frame is the mean of its channels.
    pub fn to_mono(&self) -> Audio {
        if self.channels <= 1 {
            return self.clone();
        }
        self.clone().into_mono()
    }

    /// Like [`Audio::to_mono`], reusing the buffer (no copy when already mono).
    pub fn into_mono(self) -> Audio {
        let ch = usize::from(self.channels);
        if ch <= 1 {
            return Audio {
                channels: 1,
                ..self
            };
        }
        let scale = 1.0 / ch as f32;
        let samples = self
            .samples
            .chunks_exact(ch)
            .map(|frame| frame.iter().sum::<f32>() * scale)
            .collect();
        Audio {
            samples,
            channels: 1,
            sample_rate: self.sample_rate,
        }
    }
}

/// Bounds on untrusted input, checked before and during decoding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Largest accepted input, in bytes.
    pub max_bytes: u64,
    /// Longest accepted audio, in seconds. Checked against the container's stated length before
    /// decoding, and again while decoding (so a file that hides its length is stopped early).
    pub max_duration_secs: f64,
}

impl Default for Limits {
    /// 100 MB and 2 hours.
    fn default() -> Self {
        Limits {
            max_bytes: 100 * 1024 * 1024,
            max_duration_secs: 2.0 * 3600.0,
        }
    }
}
