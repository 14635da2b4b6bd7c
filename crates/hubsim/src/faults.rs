//! Fault rules: what to break, for which paths, how many times.

use std::sync::Mutex;
use std::time::Duration;

/// A fault injected into the next matching requests.
///
/// A rule matches a request when `path_contains` occurs in its URL path (as sent or percent-decoded) or,
/// for a CDN request `/cdn/{sha256}`, in the `org/name/path` of a repository file with that content — so
/// a rule naming `model.safetensors` also hits the CDN download of that file. Rules are tried in the
/// order they were pushed; the first applicable rule of a kind applies, its `times` goes down by one, and
/// at 0 it is dropped. `Status` and `Delay` are used up by every matching request; `CutBody` and
/// `Corrupt` only by a GET whose body they actually change (a body longer than `after_bytes`, a range
/// that holds `offset`), so parallel range requests use them up deterministically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The next `times` GET bodies of matching files stop after `after_bytes` bytes (counted from the start
    /// of this response's body) and the connection is cut: the response announced the full
    /// `Content-Length`, so the client sees an error, not a clean end.
    CutBody {
        path_contains: String,
        after_bytes: u64,
        times: u32,
    },
    /// The next `times` matching requests (any method, either origin) answer `status` with a JSON error
    /// body, plus `Retry-After: {retry_after_secs}` when given (useful with 429 and 503).
    Status {
        path_contains: String,
        status: u16,
        retry_after_secs: Option<u64>,
        times: u32,
    },
    /// The next `times` GET bodies of matching files that include file offset `offset` have the byte
    /// there flipped (xor 0xff); length and headers stay right.
    Corrupt {
        path_contains: String,
        offset: u64,
        times: u32,
    },
    /// The next `times` matching requests wait `millis` before their headers are answered.
    Delay {
        path_contains: String,
        millis: u64,
        times: u32,
    },
}

impl Fault {
    fn path_contains(&self) -> &str {
        match self {
            Fault::CutBody { path_contains, .. }
            | Fault::Status { path_contains, .. }
            | Fault::Corrupt { path_contains, .. }
            | Fault::Delay { path_contains, .. } => path_contains,
        }
    }

    fn times_mut(&mut self) -> &mut u32 {
        match self {
            Fault::CutBody { times, .. }
            | Fault::Status { times, .. }
            | Fault::Corrupt { times, .. }
            | Fault::Delay { times, .. } => times,
        }
    }

    fn matches(&self, keys: &[String]) -> bool {
        keys.iter().any(|k| k.contains(self.path_contains()))
    }
}

/// The live rule list shared by both listeners.
#[derive(Debug, Default)]
pub(crate) struct FaultRules {
    rules: Mutex<Vec<Fault>>,
}

impl FaultRules {
    pub fn push(&self, mut fault: Fault) {
        if *fault.times_mut() > 0 {
            self.rules.lock().expect("fault rules lock").push(fault);
        }
    }

    pub fn clear(&self) {
        self.rules.lock().expect("fault rules lock").clear();
    }

    /// Pause before answering, if a `Delay` rule matches.
    pub fn take_delay(&self, keys: &[String]) -> Option<Duration> {
        self.take(keys, |f| match f {
            Fault::Delay { millis, .. } => Some(Duration::from_millis(*millis)),
            _ => None,
        })
    }

    /// `(status, retry_after_secs)` to answer instead of the real response, if a `Status` rule matches.
    pub fn take_status(&self, keys: &[String]) -> Option<(u16, Option<u64>)> {
        self.take(keys, |f| match f {
            Fault::Status {
                status,
                retry_after_secs,
                ..
            } => Some((*status, *retry_after_secs)),
            _ => None,
        })
    }

    /// Bytes to send before cutting a body of `body_len` bytes, if a `CutBody` rule applies to it.
    pub fn take_cut(&self, keys: &[String], body_len: u64) -> Option<u64> {
        self.take(keys, |f| match f {
            Fault::CutBody { after_bytes, .. } if *after_bytes < body_len => Some(*after_bytes),
            _ => None,
        })
    }

    /// File offset to flip in a body covering `start..end`, if a `Corrupt` rule applies to it.
    pub fn take_corrupt(&self, keys: &[String], start: u64, end: u64) -> Option<u64> {
        self.take(keys, |f| match f {
            Fault::Corrupt { offset, .. } if (start..end).contains(offset) => Some(*offset),
            _ => None,
        })
    }

    /// Finds the first rule that matches `keys` and for which `apply` gives an effect, and uses it once.
    fn take<T>(&self, keys: &[String], apply: impl Fn(&Fault) -> Option<T>) -> Option<T> {
        let mut rules = self.rules.lock().expect("fault rules lock");
        let (index, effect) = rules
            .iter()
            .enumerate()
            .filter(|(_, f)| f.matches(keys))
            .find_map(|(i, f)| apply(f).map(|e| (i, e)))?;
        let times = rules[index].times_mut();
        *times -= 1;
        if *times == 0 {
            rules.remove(index);
        }
        Some(effect)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(path: &str) -> Vec<String> {
        vec![path.to_owned()]
    }

    #[test]
    fn rules_are_used_up_and_dropped() {
        let rules = FaultRules::default();
        rules.push(Fault::Status {
            path_contains: "a.bin".into(),
            status: 503,
            retry_after_secs: None,
            times: 2,
        });
        assert_eq!(rules.take_status(&keys("/x/y/resolve/main/b.bin")), None);
        assert_eq!(
            rules.take_status(&keys("/x/y/resolve/main/a.bin")),
            Some((503, None))
        );
        assert_eq!(
            rules.take_status(&keys("/x/y/resolve/main/a.bin")),
            Some((503, None))
        );
        assert_eq!(rules.take_status(&keys("/x/y/resolve/main/a.bin")), None);
        assert!(rules.rules.lock().unwrap().is_empty());
    }

    #[test]
    fn body_faults_are_used_only_where_they_apply() {
        let rules = FaultRules::default();
        rules.push(Fault::CutBody {
            path_contains: "m".into(),
            after_bytes: 100,
            times: 1,
        });
        rules.push(Fault::Corrupt {
            path_contains: "m".into(),
            offset: 500,
            times: 1,
        });
        assert_eq!(rules.take_cut(&keys("m"), 100), None);
        assert_eq!(rules.take_cut(&keys("m"), 101), Some(100));
        assert_eq!(rules.take_cut(&keys("m"), 101), None);
        assert_eq!(rules.take_corrupt(&keys("m"), 0, 500), None);
        assert_eq!(rules.take_corrupt(&keys("m"), 500, 501), Some(500));
        assert_eq!(rules.take_corrupt(&keys("m"), 0, 1000), None);
    }

    #[test]
    fn zero_times_is_never_stored() {
        let rules = FaultRules::default();
        rules.push(Fault::Delay {
            path_contains: String::new(),
            millis: 1,
            times: 0,
        });
        assert_eq!(rules.take_delay(&keys("/anything")), None);
    }
}
