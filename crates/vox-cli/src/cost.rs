//! `vox cost report`: what the instances and jobs cost, from the job database's records.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;

use crate::config::Settings;
use crate::worker::{data_dir, database};

#[derive(clap::Args)]
pub struct CostArgs {
    #[command(subcommand)]
    command: CostCommand,
}

#[derive(clap::Subcommand)]
enum CostCommand {
    /// Per instance running/stopped time and dollars, per job GPU-seconds and dollars, totals.
    Report {
        #[arg(long)]
        json: bool,
        /// The job database (as for `vox worker`).
        #[arg(long, env = "VOX_DATABASE_URL", value_name = "URL")]
        database_url: Option<String>,
        #[arg(long, env = "VOX_DATA_DIR", value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

pub async fn run(args: CostArgs, settings: &Settings) -> Result<ExitCode> {
    let CostCommand::Report {
        json,
        database_url,
        data_dir: dir,
    } = args.command;
    let db = database(database_url, &data_dir(dir, settings)).await?;
    let r = db.cost_report().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<24} {:>12} {:>12} {:>10} {:>10} {:>10}",
        "INSTANCE", "RUNNING s", "STOPPED s", "GPU $", "STORAGE $", "TOTAL $"
    );
    for i in &r.instances {
        println!(
            "{:<24} {:>12.1} {:>12.1} {:>10.4} {:>10.4} {:>10.4}",
            i.instance,
            i.running_seconds,
            i.stopped_seconds,
            i.gpu_dollars,
            i.storage_dollars,
            i.total_dollars
        );
    }
    println!(
        "{:<24} {:>12} {:>12} {:>10.4} {:>10.4} {:>10.4}",
        "all", "", "", r.gpu_dollars, r.storage_dollars, r.total_dollars
    );
    println!();
    println!(
        "jobs: {} recorded, {:.1} GPU-seconds, ${:.4} ({:.0}% of GPU spend; the rest is start-up and idle)",
        r.jobs.len(),
        r.job_gpu_seconds,
        r.job_dollars,
        if r.gpu_dollars > 0.0 {
            100.0 * r.job_dollars / r.gpu_dollars
        } else {
            0.0
        }
    );
    Ok(ExitCode::SUCCESS)
}
