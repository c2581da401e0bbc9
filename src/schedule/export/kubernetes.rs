//! Kubernetes: a CronJob per runbook, with the runbook's time zone as
//! `timeZone`, never two drills at once (`concurrencyPolicy: Forbid`), and a
//! missed drill started once if it is at most one interval late.

use sha2::{Digest as _, Sha256};

use super::{command_words, header, stem, yaml_str, File, Format, Options};
use crate::schedule::{fires, CronFields, Job, Scheduled};

/// A CronJob's name is at most 52 characters (its Jobs add 11).
const MAX_NAME: usize = 52;

pub(super) fn render(
    s: &Scheduled,
    fields: &CronFields,
    options: &Options,
) -> Result<File, String> {
    let line = fields.cron_line()?;
    let image = options
        .image
        .as_deref()
        .ok_or("a CronJob needs the image holding drctl and the repository (--image)")?;
    let name = object_name(s.job, &s.runbook);
    let deadline = starting_deadline(s, options);
    let labels = format!(
        "app.kubernetes.io/name: drctl\n\
         app.kubernetes.io/component: {}",
        s.job.command()
    );
    let indent = |text: &str, by: usize| {
        text.lines()
            .map(|l| format!("{:by$}{l}\n", ""))
            .collect::<String>()
    };
    let content = format!(
        "{header}\
         # The image holds drctl and this repository as its working directory; the\n\
         # pod reaches AWS through its service account's role or AWS_* variables.\n\
         # With the team's run store in the repository's drctl.toml ([state] url =\n\
         # \"s3://BUCKET/PREFIX\") no volume is needed: the role also needs\n\
         # s3:ListBucket on the bucket and s3:GetObject, s3:PutObject and\n\
         # s3:DeleteObject under the prefix. Without one, mount a volume at .drctl\n\
         # to keep the drill reports. `--scheduled` claims the fire in the store,\n\
         # so a job fired twice drills once. Kubernetes resolves daylight-saving\n\
         # gaps and overlaps by its own rules.\n\
         apiVersion: batch/v1\n\
         kind: CronJob\n\
         metadata:\n\
         \x20 name: {name}\n\
         \x20 labels:\n{labels8}\
         \x20 annotations:\n\
         \x20   drctl/runbook: {runbook}\n\
         spec:\n\
         \x20 schedule: {line}\n\
         \x20 timeZone: {zone}\n\
         \x20 # Never two drills of one runbook at once.\n\
         \x20 concurrencyPolicy: Forbid\n\
         \x20 # A drill missed while the controller was down starts once, if at most\n\
         \x20 # one interval of the schedule late.\n\
         \x20 startingDeadlineSeconds: {deadline}\n\
         \x20 successfulJobsHistoryLimit: 3\n\
         \x20 failedJobsHistoryLimit: 5\n\
         \x20 jobTemplate:\n\
         \x20   spec:\n\
         \x20     # A failed drill is a verdict, not something to retry.\n\
         \x20     backoffLimit: 0\n\
         \x20     template:\n\
         \x20       metadata:\n\
         \x20         labels:\n{labels12}\
         \x20       spec:\n\
         \x20         restartPolicy: Never\n\
         \x20         # SIGTERM makes a drill tear down what it built: give it the time.\n\
         \x20         terminationGracePeriodSeconds: 1800\n\
         \x20         containers:\n\
         \x20           - name: {job}\n\
         \x20             image: {image}\n\
         \x20             command: [{command}]\n",
        header = header(Format::Kubernetes, s, "#"),
        labels8 = indent(&labels, 4),
        labels12 = indent(&labels, 12),
        job = s.job.command(),
        command = std::iter::once("drctl")
            .chain(command_words(s))
            .map(yaml_str)
            .collect::<Vec<_>>()
            .join(", "),
        runbook = yaml_str(&s.runbook),
        line = yaml_str(&line),
        zone = yaml_str(&s.timezone),
        image = yaml_str(image),
    );
    Ok(File {
        name: format!("{}.yaml", stem(s.job, &s.runbook)),
        content,
    })
}

/// `drctl-drill-<runbook>` when that is a valid object name; else the
/// runbook made valid and shortened, with a hash of it to keep it unique.
fn object_name(job: Job, runbook: &str) -> String {
    let wanted = stem(job, runbook);
    let valid = wanted.len() <= MAX_NAME
        && wanted
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !wanted.ends_with('-');
    if valid {
        return wanted;
    }
    let cleaned: String = wanted
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let hash = Sha256::digest(runbook.as_bytes());
    let suffix: String = hash[..3].iter().map(|b| format!("{b:02x}")).collect();
    let keep = MAX_NAME - suffix.len() - 1;
    let head = cleaned[..cleaned.len().min(keep)].trim_end_matches('-');
    format!("{head}-{suffix}")
}

/// The shortest gap between the schedule's next fires, in seconds: the
/// controller starts a missed drill only within this window, and never
/// counts more than a couple of missed fires in it (it gives up past 100).
fn starting_deadline(s: &Scheduled, options: &Options) -> i64 {
    let next: Vec<i64> = fires(&s.cron, &s.tz, options.now)
        .take(50)
        .map(|f| f.at.timestamp().as_second())
        .collect();
    next.windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .unwrap_or(24 * 3600)
        .max(60)
}

#[cfg(test)]
mod tests {
    use yaml_rust2::{Yaml, YamlLoader};

    use super::super::test_support::{export, options, scheduled};
    use super::super::{render, Format};
    use super::*;

    fn load(text: &str) -> Yaml {
        let mut docs = YamlLoader::load_from_str(text).expect("valid YAML");
        assert_eq!(docs.len(), 1);
        docs.remove(0)
    }

    #[test]
    fn the_cron_job_parses_with_zone_policy_and_deadline() {
        let files = export(Format::Kubernetes, "0 4 * * SAT", "Europe/Berlin").expect("export");
        assert_eq!(files[0].name, "drctl-drill-web-dr.yaml");
        let doc = load(&files[0].content);
        assert_eq!(doc["apiVersion"].as_str(), Some("batch/v1"));
        assert_eq!(doc["kind"].as_str(), Some("CronJob"));
        assert_eq!(doc["metadata"]["name"].as_str(), Some("drctl-drill-web-dr"));
        assert_eq!(
            doc["metadata"]["annotations"]["drctl/runbook"].as_str(),
            Some("web-dr")
        );
        let spec = &doc["spec"];
        assert_eq!(spec["schedule"].as_str(), Some("0 4 * * 6"));
        assert_eq!(spec["timeZone"].as_str(), Some("Europe/Berlin"));
        assert_eq!(spec["concurrencyPolicy"].as_str(), Some("Forbid"));
        // A week, less the hour Berlin's clocks skip in March.
        assert_eq!(
            spec["startingDeadlineSeconds"].as_i64(),
            Some(7 * 24 * 3600 - 3600)
        );
        let job = &spec["jobTemplate"]["spec"];
        assert_eq!(job["backoffLimit"].as_i64(), Some(0));
        let pod = &job["template"]["spec"];
        assert_eq!(pod["restartPolicy"].as_str(), Some("Never"));
        let container = &pod["containers"][0];
        assert_eq!(
            container["image"].as_str(),
            Some("registry.example.com/dr/drctl:1.4")
        );
        let command: Vec<_> = container["command"]
            .as_vec()
            .expect("a list")
            .iter()
            .map(|w| w.as_str().expect("a string"))
            .collect();
        assert_eq!(command, ["drctl", "drill", "web-dr", "--scheduled"]);
        assert_eq!(
            job["template"]["metadata"]["labels"]["app.kubernetes.io/component"].as_str(),
            Some("drill")
        );
    }

    #[test]
    fn the_deadline_is_the_shortest_interval() {
        let files = export(Format::Kubernetes, "0 */6 * * *", "UTC").expect("export");
        let doc = load(&files[0].content);
        assert_eq!(
            doc["spec"]["startingDeadlineSeconds"].as_i64(),
            Some(6 * 3600)
        );
    }

    #[test]
    fn an_odd_runbook_name_becomes_a_valid_unique_object_name() {
        let long = "Web DR drill for the payments platform in eu-central-1";
        let files = render(
            Format::Kubernetes,
            &[scheduled(long, "0 4 * * *", "UTC")],
            &options(),
        )
        .expect("export");
        let doc = load(&files[0].content);
        let name = doc["metadata"]["name"].as_str().expect("a name");
        assert!(name.len() <= MAX_NAME, "{name}");
        assert!(name.starts_with("drctl-drill-web-dr-drill"), "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{name}"
        );
        assert_eq!(
            doc["metadata"]["annotations"]["drctl/runbook"].as_str(),
            Some(long)
        );
        assert_ne!(
            object_name(Job::Drill, "a b"),
            object_name(Job::Drill, "a_b"),
            "distinct runbooks, distinct names"
        );
    }

    #[test]
    fn without_an_image_it_is_refused() {
        let mut opts = options();
        opts.image = None;
        let err = render(
            Format::Kubernetes,
            &[scheduled("web-dr", "0 4 * * *", "UTC")],
            &opts,
        )
        .expect_err("no image");
        assert!(err.to_string().contains("--image"), "{err}");
    }
}
