//! `drctl sandbox start|stop|status`.

use std::io::Write as _;

use super::{cloud_target, GlobalArgs, SandboxCommand};
use crate::cloud::ec2::{Ec2, SdkEc2};
use crate::cloud::AwsSettings;
use crate::error::{exit, Error};
use crate::sandbox::{Sandbox, SandboxStatus};

pub(super) async fn sandbox(global: &GlobalArgs, command: &SandboxCommand) -> Result<u8, Error> {
    let dir = global.sandbox_dir();
    let blocking = |f: Box<
        dyn FnOnce(Sandbox) -> Result<Option<SandboxStatus>, crate::sandbox::SandboxError> + Send,
    >| {
        let dir = dir.clone();
        async move {
            tokio::task::spawn_blocking(move || f(Sandbox::new(dir)))
                .await
                .expect("sandbox task panicked")
        }
    };
    let mut out = std::io::stdout().lock();
    match command {
        SandboxCommand::Start => {
            let status = blocking(Box::new(|s| s.start().map(Some))).await?;
            if let Some(status) = status {
                let _ = writeln!(
                    out,
                    "sandbox running at {} (pid {}, {})",
                    status.endpoint, status.pid, status.moto
                );
                let _ = writeln!(
                    out,
                    "use it with: drctl --sandbox …   or   export AWS_ENDPOINT_URL={}",
                    status.endpoint
                );
            }
            Ok(exit::OK)
        }
        SandboxCommand::Stop => {
            match blocking(Box::new(|s| s.stop())).await? {
                Some(status) => {
                    let _ = writeln!(
                        out,
                        "sandbox stopped (pid {}, was at {})",
                        status.pid, status.endpoint
                    );
                }
                None => {
                    let _ = writeln!(out, "no sandbox was running");
                }
            }
            Ok(exit::OK)
        }
        SandboxCommand::Status => {
            drop(out);
            sandbox_status(global).await
        }
    }
}

/// With `--sandbox`, reports the endpoint this command uses (starting one if
/// needed); without, the background sandbox if any. Either way it proves the
/// endpoint is a live EC2 API by listing availability zones through the SDK.
async fn sandbox_status(global: &GlobalArgs) -> Result<u8, Error> {
    let region = global.region.as_deref().unwrap_or("us-east-1");
    // Keeps an ephemeral sandbox alive until the probe is done.
    let target;
    let (settings, how) = if global.sandbox {
        target = cloud_target(global, region).await?;
        let how = match (&target.sandbox, &target.ephemeral_sandbox) {
            (Some(s), _) => format!("background sandbox, pid {}, moto {}", s.pid, s.moto),
            (None, Some(m)) => format!(
                "started for this command, pid {}; stops when it exits",
                m.pid()
            ),
            (None, None) => unreachable!("--sandbox always yields a sandbox"),
        };
        (target.settings.clone(), how)
    } else {
        let dir = global.sandbox_dir();
        let status = tokio::task::spawn_blocking(move || Sandbox::new(dir).status())
            .await
            .expect("sandbox status task panicked")?;
        let Some(s) = status else {
            println!("no sandbox running (start one with `drctl sandbox start`)");
            return Ok(exit::FAILURE);
        };
        let how = format!("background sandbox, pid {}, moto {}", s.pid, s.moto);
        (AwsSettings::sandbox(&s.endpoint, region), how)
    };
    let zones = SdkEc2::new(&settings.load().await)
        .availability_zones()
        .await?;
    println!(
        "sandbox endpoint {} ({how})",
        settings.endpoint_url.as_deref().unwrap_or_default()
    );
    println!(
        "EC2 answers: {} availability zones in {region}",
        zones.len()
    );
    Ok(exit::OK)
}
