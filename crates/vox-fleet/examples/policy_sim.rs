//! Idle-stop policy simulation over synthetic arrival traces (bench/fleet/run.sh).
//!
//! One instance serves jobs first come, first served. A job arriving at a stopped instance starts it and waits
//! for the restart (start-to-ready); jobs arriving meanwhile queue and are served in the same busy period. The
//! GPU bills while booting, serving and idling; the disk bills all the time. Reports cost per 1,000 jobs and
//! p95 latency (arrival → done) per policy and trace, against two clairvoyant baselines: the optimum with the
//! same on-demand starts (exact, by dynamic programming), which no online policy can beat on cost, and the
//! zero-wait optimum that restarts just in time for every job (the textbook ski-rental baseline; it never makes
//! a job wait, so policies that do can cost less). Also the best fixed timeout in hindsight. Seeded: the same
//! arguments give the same numbers.
//!
//! `cargo run -p vox-fleet --example policy_sim -- [--restart-s 90] [--service-s 5] [--gpu-dph 0.40]
//! [--storage-dph 0.0083] [--seed 20261127]`

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vox_fleet::{IdleInputs, IdlePolicy};

struct Params {
    restart: f64,
    service: f64,
    gpu_dph: f64,
    storage_dph: f64,
}

/// Exponential sample with mean `m`.
fn exp(rng: &mut StdRng, m: f64) -> f64 {
    -m * (1.0 - rng.random::<f64>()).ln()
}

const DAY: f64 = 86_400.0;

fn poisson(rng: &mut StdRng, mean_gap: f64, horizon: f64) -> Vec<f64> {
    let mut t = 0.0;
    let mut v = Vec::new();
    loop {
        t += exp(rng, mean_gap);
        if t > horizon {
            return v;
        }
        v.push(t);
    }
}

/// Bursts of 10–30 jobs 1–5 s apart; bursts arrive as a Poisson process with mean gap `mean_gap`.
fn bursts(rng: &mut StdRng, mean_gap: f64, horizon: f64) -> Vec<f64> {
    let mut v = Vec::new();
    for start in poisson(rng, mean_gap, horizon) {
        let mut t = start;
        for _ in 0..rng.random_range(10..=30) {
            v.push(t);
            t += rng.random_range(1.0..5.0);
        }
    }
    v.sort_by(f64::total_cmp);
    v
}

/// A daily cycle: rate peaks at 1 job per `peak_gap` s mid-day and falls to zero at night (thinning).
fn daily(rng: &mut StdRng, peak_gap: f64, days: f64) -> Vec<f64> {
    poisson(rng, peak_gap, days * DAY)
        .into_iter()
        .filter(|&t| {
            let phase = (t % DAY) / DAY;
            let rate = (std::f64::consts::PI * phase).sin().powi(4);
            rng.random::<f64>() < rate
        })
        .collect()
}

#[derive(Clone)]
enum Policy {
    /// Timeout from the library's policy, given recent idle gaps.
    Vox(IdlePolicy),
    Fixed(f64),
}

struct Outcome {
    usd: f64,
    latencies: Vec<f64>,
}

/// Runs one policy over `arrivals` until `horizon`.
fn simulate(p: &Params, arrivals: &[f64], policy: &Policy, horizon: f64) -> Outcome {
    let mut gpu_secs = 0.0;
    let mut latencies = Vec::with_capacity(arrivals.len());
    let mut free_at = f64::NEG_INFINITY; // when the instance finishes its queue
    let mut on = false;
    let mut gaps: Vec<f64> = Vec::new();
    for &a in arrivals {
        if on && a > free_at {
            let gap = a - free_at;
            let timeout = match policy {
                Policy::Fixed(t) => *t,
                Policy::Vox(ip) => ip
                    .timeout(&IdleInputs {
                        restart_secs: Some(p.restart),
                        gpu_dph: p.gpu_dph,
                        storage_dph: p.storage_dph,
                        recent_gaps: gaps.clone(),
                    })
                    .as_secs_f64(),
            };
            gaps.push(gap);
            if gaps.len() > 64 {
                gaps.remove(0);
            }
            if gap <= timeout {
                gpu_secs += gap;
            } else {
                gpu_secs += timeout;
                on = false;
            }
        }
        let start = if on {
            a.max(free_at)
        } else {
            gpu_secs += p.restart;
            on = true;
            a + p.restart
        };
        free_at = start + p.service;
        gpu_secs += p.service;
        latencies.push(free_at - a);
    }
    // The tail after the last job, under the policy, until the horizon.
    if on && horizon > free_at {
        let tail = horizon - free_at;
        let timeout = match policy {
            Policy::Fixed(t) => *t,
            Policy::Vox(ip) => ip
                .timeout(&IdleInputs {
                    restart_secs: Some(p.restart),
                    gpu_dph: p.gpu_dph,
                    storage_dph: p.storage_dph,
                    recent_gaps: gaps.clone(),
                })
                .as_secs_f64(),
        };
        gpu_secs += tail.min(timeout);
    }
    Outcome {
        usd: gpu_secs * p.gpu_dph / 3600.0 + horizon * p.storage_dph / 3600.0,
        latencies,
    }
}

/// Clairvoyant: for every gap, idle through it or stop and restart just in time (no added latency).
fn optimum(p: &Params, arrivals: &[f64], horizon: f64) -> Outcome {
    let mut gpu_secs = p.restart; // the first start, done ahead of the first job
    let mut latencies = Vec::new();
    let mut free_at = f64::NEG_INFINITY;
    for &a in arrivals {
        if free_at.is_finite() && a > free_at {
            gpu_secs += (a - free_at).min(p.restart);
        }
        let start = a.max(free_at);
        free_at = start + p.service;
        gpu_secs += p.service;
        latencies.push(free_at - a);
    }
    let _ = horizon;
    Outcome {
        usd: gpu_secs * p.gpu_dph / 3600.0 + horizon * p.storage_dph / 3600.0,
        latencies,
    }
}

/// Clairvoyant with on-demand starts, the same mechanics as the online policies: whenever the instance falls
/// idle it either stays up until the next job or stops at once (stopping later is never better), and a job that
/// finds it stopped starts it and waits, with jobs arriving meanwhile served in the same busy period. Exact,
/// by dynamic programming over the jobs: after each decision the future depends only on the next arrival and
/// whether the instance is up.
fn optimum_on_demand(p: &Params, arrivals: &[f64], horizon: f64) -> Outcome {
    let n = arrivals.len();
    // best[i][warm]: least GPU seconds from job i on, when job i finds the instance up (1) or stopped (0).
    let mut best = vec![[0.0f64; 2]; n + 1];
    let mut choice = vec![[false; 2]; n + 1]; // true = keep running through the gap that follows
    // The busy period that starts with job i: (GPU seconds, next job index, when the queue empties).
    let busy = |i: usize, warm: bool| -> (f64, usize, f64) {
        let mut gpu = 0.0;
        let mut free = arrivals[i];
        if !warm {
            gpu += p.restart;
            free += p.restart;
        }
        let mut j = i;
        while j < n && arrivals[j] <= free {
            free += p.service;
            gpu += p.service;
            j += 1;
        }
        (gpu, j, free)
    };
    for i in (0..n).rev() {
        for warm in [false, true] {
            let (gpu, j, free) = busy(i, warm);
            let (rest, keep) = if j == n {
                (0.0, false)
            } else {
                let keep = arrivals[j] - free + best[j][1];
                let stop = best[j][0];
                if keep <= stop {
                    (keep, true)
                } else {
                    (stop, false)
                }
            };
            best[i][warm as usize] = gpu + rest;
            choice[i][warm as usize] = keep;
        }
    }
    // Replay the choices for the latencies.
    let mut latencies = Vec::with_capacity(n);
    let (mut i, mut warm) = (0, false);
    while i < n {
        let mut free = arrivals[i] + if warm { 0.0 } else { p.restart };
        let mut j = i;
        while j < n && arrivals[j] <= free {
            free += p.service;
            latencies.push(free - arrivals[j]);
            j += 1;
        }
        warm = choice[i][warm as usize];
        i = j;
    }
    Outcome {
        usd: best.first().map_or(0.0, |b| b[0]) * p.gpu_dph / 3600.0
            + horizon * p.storage_dph / 3600.0,
        latencies,
    }
}

fn p95(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 * 0.95).ceil() as usize)
        .saturating_sub(1)
        .min(v.len() - 1)]
}

fn arg(args: &[String], name: &str, default: f64) -> f64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let p = Params {
        restart: arg(&args, "--restart-s", 90.0),
        service: arg(&args, "--service-s", 5.0),
        gpu_dph: arg(&args, "--gpu-dph", 0.40),
        storage_dph: arg(&args, "--storage-dph", 0.0083),
    };
    let seed = arg(&args, "--seed", 20261127.0) as u64;
    let mut rng = StdRng::seed_from_u64(seed);
    let days = 3.0;
    let h = days * DAY;
    let traces: Vec<(&str, Vec<f64>)> = vec![
        ("poisson 1/10s", poisson(&mut rng, 10.0, h)),
        ("poisson 1/60s", poisson(&mut rng, 60.0, h)),
        ("poisson 1/90s", poisson(&mut rng, 90.0, h)),
        ("poisson 1/300s", poisson(&mut rng, 300.0, h)),
        ("poisson 1/1800s", poisson(&mut rng, 1800.0, h)),
        ("bursts every ~20min", bursts(&mut rng, 1200.0, h)),
        ("bursts every ~2h", bursts(&mut rng, 7200.0, h)),
        ("daily cycle peak 1/30s", daily(&mut rng, 30.0, days)),
    ];
    let bound = |d: u64| Duration::from_secs(d);
    let break_even = IdlePolicy::BreakEven {
        assumed_restart: bound(120),
        min: bound(0),
        max: bound(86_400),
    };
    // vox's default policy, exactly as the fleet uses it.
    let adaptive = IdlePolicy::default();
    let policies: Vec<(&str, Policy)> = vec![
        ("stop after each job", Policy::Fixed(0.0)),
        ("always on", Policy::Fixed(f64::INFINITY)),
        ("fixed 5 min", Policy::Fixed(300.0)),
        ("vox break-even", Policy::Vox(break_even)),
        ("vox adaptive", Policy::Vox(adaptive)),
    ];
    println!(
        "# idle policy simulation: restart {} s, service {} s/job, GPU {} $/h, storage {} $/h, {} days per trace, seed {seed}",
        p.restart, p.service, p.gpu_dph, p.storage_dph, days
    );
    println!("# cost = $ per 1,000 jobs; p95 = 95th percentile latency (arrival → done) in s");
    println!(
        "# ÷ optimum = cost / the clairvoyant optimum with on-demand starts (same mechanics: a job that finds the \
         instance stopped starts it and waits)"
    );
    println!(
        "# ÷ zero-wait = cost / the clairvoyant that restarts just in time (no job ever waits; policies that let \
         jobs wait can cost less)"
    );
    let grid: Vec<f64> = std::iter::once(0.0)
        .chain((0..=60).map(|i| 10f64.powf(i as f64 / 10.0)))
        .chain([f64::INFINITY])
        .collect();
    // Worst ratios of vox's policies: (break-even, adaptive) to the on-demand optimum, and to the zero-wait one.
    let mut worst = [[0.0f64; 2]; 2];
    for (name, arr) in &traces {
        let k = arr.len() as f64 / 1000.0;
        let opt = optimum_on_demand(&p, arr, h);
        let zero_wait = optimum(&p, arr, h);
        let best_fixed = grid
            .iter()
            .map(|&t| (t, simulate(&p, arr, &Policy::Fixed(t), h).usd))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap();
        println!("\n## {name}: {} jobs", arr.len());
        println!(
            "{:<24} {:>10} {:>9} {:>9} {:>11}",
            "policy", "cost", "p95 s", "÷ optimum", "÷ zero-wait"
        );
        let row = |label: &str, o: &Outcome| {
            println!(
                "{:<24} {:>10.4} {:>9.1} {:>9.3} {:>11.3}",
                label,
                o.usd / k,
                p95(&o.latencies),
                o.usd / opt.usd,
                o.usd / zero_wait.usd
            );
        };
        for (pname, pol) in &policies {
            let o = simulate(&p, arr, pol, h);
            row(pname, &o);
            let slot = match *pname {
                "vox break-even" => 0,
                "vox adaptive" => 1,
                _ => continue,
            };
            worst[slot][0] = worst[slot][0].max(o.usd / opt.usd);
            worst[slot][1] = worst[slot][1].max(o.usd / zero_wait.usd);
        }
        row("optimum (on-demand)", &opt);
        row("optimum (zero-wait)", &zero_wait);
        println!(
            "{:<24} {:>10.4} {:>9} {:>9.3} {:>11.3}   (timeout {:.0} s)",
            "best fixed (hindsight)",
            best_fixed.1 / k,
            "",
            best_fixed.1 / opt.usd,
            best_fixed.1 / zero_wait.usd,
            best_fixed.0
        );
    }
    println!(
        "\nworst ratio to the on-demand optimum: break-even {:.3}, adaptive {:.3}; to the zero-wait optimum: \
         break-even {:.3}, adaptive {:.3}",
        worst[0][0], worst[1][0], worst[0][1], worst[1][1]
    );
}
