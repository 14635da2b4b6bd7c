//! SRT and WebVTT bodies from timed segments: shared by the server's responses and `vox stt`.

/// `HH:MM:SS<sep>mmm` (`,` for SRT, `.` for WebVTT); negative times clamp to zero.
fn stamp(t: f64, sep: char) -> String {
    let ms = (t.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{sep}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Numbered SRT cues of `(start, end, text)` segments.
pub fn srt<'a>(segments: impl IntoIterator<Item = (f64, f64, &'a str)>) -> String {
    segments
        .into_iter()
        .enumerate()
        .map(|(i, (start, end, text))| {
            format!(
                "{}\n{} --> {}\n{}\n\n",
                i + 1,
                stamp(start, ','),
                stamp(end, ','),
                text.trim()
            )
        })
        .collect()
}

/// A WebVTT document of `(start, end, text)` segments.
pub fn vtt<'a>(segments: impl IntoIterator<Item = (f64, f64, &'a str)>) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (start, end, text) in segments {
        out.push_str(&format!(
            "{} --> {}\n{}\n\n",
            stamp(start, '.'),
            stamp(end, '.'),
            text.trim()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn cues_carry_rounded_clamped_times_and_trimmed_text() {
        let segs = [(-0.1, 1.2345, " Hello. "), (3661.5, 3662.0, "Bye")];
        assert_eq!(
            super::srt(segs),
            "1\n00:00:00,000 --> 00:00:01,235\nHello.\n\n2\n01:01:01,500 --> 01:01:02,000\nBye\n\n"
        );
        assert_eq!(
            super::vtt(segs),
            "WEBVTT\n\n00:00:00.000 --> 00:00:01.235\nHello.\n\n01:01:01.500 --> 01:01:02.000\nBye\n\n"
        );
    }
}
