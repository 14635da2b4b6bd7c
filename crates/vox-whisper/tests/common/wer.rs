//! Word error rate with the normalization of tools/whisper/wer.py (golden.json's `wer_method`): lowercase,
//! drop thousands separators, '-' and '/' to spaces, keep [a-z0-9 ], spell digit-only words as English cardinals.

fn spell_int(n: u64) -> String {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    fn below_1000(n: u64, out: &mut Vec<String>) {
        if n >= 100 {
            out.push(ONES[(n / 100) as usize].into());
            out.push("hundred".into());
        }
        let r = n % 100;
        if r >= 20 {
            out.push(TENS[(r / 10) as usize].into());
            if !r.is_multiple_of(10) {
                out.push(ONES[(r % 10) as usize].into());
            }
        } else if r > 0 || n == 0 {
            out.push(ONES[r as usize].into());
        }
    }
    if n == 0 {
        return "zero".into();
    }
    let scales = [
        (1_000_000_000_000u64, "trillion"),
        (1_000_000_000, "billion"),
        (1_000_000, "million"),
        (1_000, "thousand"),
    ];
    let mut out = Vec::new();
    let mut rest = n;
    for (v, name) in scales {
        if rest >= v {
            below_1000(rest / v, &mut out);
            out.push(name.into());
            rest %= v;
        }
    }
    if rest > 0 {
        below_1000(rest, &mut out);
    }
    out.join(" ")
}

pub fn normalize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    // Thousands separators inside numbers.
    let chars: Vec<char> = lower.chars().collect();
    let mut s = String::new();
    for (i, c) in chars.iter().enumerate() {
        let sep = *c == ','
            && i > 0
            && i + 1 < chars.len()
            && chars[i - 1].is_ascii_digit()
            && chars[i + 1].is_ascii_digit();
        if !sep {
            s.push(*c);
        }
    }
    let s: String = s
        .chars()
        .map(|c| if c == '-' || c == '/' { ' ' } else { c })
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c.is_whitespace())
        .collect();
    let mut words = Vec::new();
    for w in s.split_whitespace() {
        if w.bytes().all(|b| b.is_ascii_digit()) {
            match w.parse::<u64>() {
                Ok(n) => words.extend(spell_int(n).split(' ').map(String::from)),
                Err(_) => words.push(w.to_string()),
            }
        } else {
            words.push(w.to_string());
        }
    }
    words
}

/// (errors, reference words).
pub fn errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let (r, h) = (normalize(reference), normalize(hypothesis));
    let mut prev: Vec<usize> = (0..=h.len()).collect();
    for i in 1..=r.len() {
        let mut cur = vec![i; h.len() + 1];
        for j in 1..=h.len() {
            let sub = prev[j - 1] + usize::from(r[i - 1] != h[j - 1]);
            cur[j] = sub.min(prev[j] + 1).min(cur[j - 1] + 1);
        }
        prev = cur;
    }
    (prev[h.len()], r.len())
}

#[test]
fn wer_matches_the_python_definition() {
    assert_eq!(spell_int(2015), "two thousand fifteen");
    assert_eq!(spell_int(1_000_001), "one million one");
    assert_eq!(
        normalize("more than 8,000 meters"),
        normalize("more than eight thousand meters")
    );
    assert_eq!(normalize("forty-two"), normalize("42"));
    assert_eq!(errors("a b c d", "a x c d e"), (2, 4));
}
