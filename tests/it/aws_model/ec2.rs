//! Instances and images as AWS shows them: the state moto reports, but
//! reached through the transition AWS takes time over (`pending`,
//! `stopping`, `shutting-down`; an image `pending`).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::ledger::{Shown, WaitKind};
use super::query::{passes, Form, Moto};
use super::xml::Element;
use super::AwsTimes;
use crate::proxy::Service;

/// What the model knows of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The state moto last reported (its states are final ones: `running`,
    /// `stopped`, `terminated`).
    moto: String,
    /// The transition into `moto`'s state, if the model saw it happen: when
    /// it began, and the state AWS shows meanwhile.
    change: Option<(Instant, Transition)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Pending,
    Stopping,
    ShuttingDown,
}

impl Transition {
    /// The transition AWS passes through on its way to `state`.
    fn into(state: &str) -> Option<Transition> {
        match state {
            "running" => Some(Transition::Pending),
            "stopped" => Some(Transition::Stopping),
            "terminated" => Some(Transition::ShuttingDown),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Transition::Pending => "pending",
            Transition::Stopping => "stopping",
            Transition::ShuttingDown => "shutting-down",
        }
    }

    fn wait_kind(self) -> WaitKind {
        match self {
            Transition::Pending => WaitKind::Boot,
            Transition::Stopping => WaitKind::Stop,
            Transition::ShuttingDown => WaitKind::Terminate,
        }
    }

    fn length(self, times: &AwsTimes) -> Duration {
        times.of(match self {
            Transition::Pending => times.instance_pending,
            Transition::Stopping => times.instance_stopping,
            Transition::ShuttingDown => times.instance_shutting_down,
        })
    }
}

impl Instance {
    /// The state AWS would show at `now`.
    pub fn shown(&self, times: &AwsTimes, now: Instant) -> &str {
        match self.change {
            Some((since, t)) if now < since + t.length(times) => t.name(),
            _ => &self.moto,
        }
    }

    /// When the instance finished booting, if the model saw it boot;
    /// `None` for one running since before the model knew it.
    pub fn running_from(&self, times: &AwsTimes) -> Option<Instant> {
        match self.change {
            Some((since, t @ Transition::Pending)) if self.moto == "running" => {
                Some(since + t.length(times))
            }
            _ => None,
        }
    }
}

/// The state code EC2 pairs with each state name.
pub fn code(state: &str) -> u32 {
    match state {
        "pending" => 0,
        "running" => 16,
        "shutting-down" => 32,
        "terminated" => 48,
        "stopping" => 64,
        "stopped" => 80,
        _ => 0,
    }
}

pub type Instances = HashMap<String, Instance>;

/// moto reported `state` for `id` at `now`: a new state is the end of a
/// transition that began now (moto changed it where the proxy could not
/// see, e.g. the sandbox's builder guest stopping its own instance); an
/// instance seen for the first time is taken as it is.
pub fn observe(instances: &mut Instances, id: &str, state: &str, now: Instant) {
    match instances.get_mut(id) {
        None => {
            instances.insert(
                id.to_string(),
                Instance {
                    moto: state.to_string(),
                    change: None,
                },
            );
        }
        Some(known) if known.moto != state => {
            known.change = Transition::into(state).map(|t| (now, t));
            known.moto = state.to_string();
        }
        Some(_) => {}
    }
}

/// A RunInstances, StartInstances, StopInstances or TerminateInstances
/// answer: each instance's `currentState` is the transition AWS begins now
/// (moto has already finished it).
pub fn changed(instances: &mut Instances, root: &Element, now: Instant) {
    let items: Vec<(String, String)> = root
        .all("instancesSet/item")
        .into_iter()
        .map(|i| {
            // RunInstances lists its instances with `instanceState`.
            let current = match i.child("currentState") {
                Some(c) => c.text_at("name"),
                None => i.text_at("instanceState/name"),
            };
            (i.text_at("instanceId"), current)
        })
        .filter(|(id, s)| !id.is_empty() && !s.is_empty())
        .collect();
    for (id, current) in items {
        let end = match current.as_str() {
            "pending" => "running",
            "stopping" => "stopped",
            "shutting-down" => "terminated",
            done => {
                observe(instances, &id, done, now);
                continue;
            }
        };
        let known = instances.entry(id).or_insert_with(|| Instance {
            moto: String::new(),
            change: None,
        });
        if known.moto != end {
            known.moto = end.to_string();
            known.change = Transition::into(end).map(|t| (now, t));
        }
    }
}

/// The state filters of a DescribeInstances request, which the model
/// applies to the states it shows rather than let moto apply them to its own.
#[derive(Debug, Default)]
pub struct StateFilters {
    names: Vec<Vec<String>>,
    codes: Vec<Vec<String>>,
}

impl StateFilters {
    /// The `instance-state-name` and `instance-state-code` filters, taken
    /// out of `form`.
    pub fn take(form: &mut Form) -> StateFilters {
        StateFilters {
            names: form.take_filters("instance-state-name"),
            codes: form.take_filters("instance-state-code"),
        }
    }

    fn pass(&self, state: &str) -> bool {
        passes(&self.names, state) && passes(&self.codes, &code(state).to_string())
    }
}

/// A DescribeInstances answer as AWS would give it: states as shown, then
/// the state filters the model took out of the request applied to them,
/// and reservations left empty dropped.
pub fn describe_instances(
    instances: &mut Instances,
    times: &AwsTimes,
    now: Instant,
    root: &mut Element,
    state_filters: &StateFilters,
) {
    root.each_mut("reservationSet/item/instancesSet/item", &mut |item| {
        let id = item.text_at("instanceId");
        let moto = item.text_at("instanceState/name");
        if id.is_empty() || moto.is_empty() {
            return;
        }
        observe(instances, &id, &moto, now);
        let shown = instances[&id].shown(times, now).to_string();
        set_state(item, &shown);
    });
    root.each_mut("reservationSet/item/instancesSet", &mut |set| {
        set.retain(|item| state_filters.pass(&item.text_at("instanceState/name")));
    });
    if let Some(reservations) = root.child_mut("reservationSet") {
        reservations.retain(|r| !r.all("instancesSet/item").is_empty());
    }
}

/// What a DescribeInstances answer, as rewritten, showed of the transitions
/// the model saw begin: each listed instance in one, under way or ended.
pub fn waits_shown(instances: &Instances, times: &AwsTimes, root: &Element) -> Vec<Shown> {
    root.all("reservationSet/item/instancesSet/item")
        .into_iter()
        .filter_map(|item| {
            let id = item.text_at("instanceId");
            let (since, t) = instances.get(&id)?.change?;
            let length = t.length(times);
            Some(Shown {
                kind: t.wait_kind(),
                id,
                began: Some(since),
                length,
                ready: since + length,
                under_way: item.text_at("instanceState/name") == t.name(),
            })
        })
        .collect()
}

fn set_state(item: &mut Element, name: &str) {
    if let Some(state) = item.child_mut("instanceState") {
        *state = Element::new("instanceState");
        state
            .push(Element::with_text("code", &code(name).to_string()))
            .push(Element::with_text("name", name));
    }
}

/// Images the proxy saw created or copied, by id: when.
pub type Images = HashMap<String, Instant>;

/// A CreateImage or CopyImage answer: its image is pending from now.
pub fn image_created(images: &mut Images, root: &Element, now: Instant) {
    let id = root.text_at("imageId");
    if !id.is_empty() {
        images.insert(id, now);
    }
}

/// A DescribeImages answer with new images `pending`, filtered on the
/// `state` filters the model took out of the request.
pub fn describe_images(
    images: &Images,
    times: &AwsTimes,
    now: Instant,
    root: &mut Element,
    state_filters: &[Vec<String>],
) {
    root.each_mut("imagesSet/item", &mut |item| {
        let pending = images
            .get(&item.text_at("imageId"))
            .is_some_and(|since| now < *since + times.of(times.image_pending));
        if pending && item.text_at("imageState") == "available" {
            if let Some(state) = item.child_mut("imageState") {
                state.set_text("pending");
            }
        }
    });
    if let Some(set) = root.child_mut("imagesSet") {
        set.retain(|item| passes(state_filters, &item.text_at("imageState")));
    }
}

/// The states moto gives the instance ids among `targets`, in one
/// DescribeInstances (by filter, which unlike `InstanceId.N` does not fail on an
/// id moto does not know).
pub fn ask_states(
    moto: &mut Moto,
    targets: &BTreeSet<String>,
) -> Result<Vec<(String, String)>, String> {
    let ids: Vec<&String> = targets.iter().filter(|t| t.starts_with("i-")).collect();
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let names: Vec<String> = (1..=ids.len())
        .map(|n| format!("Filter.1.Value.{n}"))
        .collect();
    let mut params = vec![
        ("Action", "DescribeInstances"),
        ("Filter.1.Name", "instance-id"),
    ];
    params.extend(
        names
            .iter()
            .map(String::as_str)
            .zip(ids.iter().map(|s| s.as_str())),
    );
    let root = moto.call(Service::Ec2, &params)?;
    Ok(root
        .all("reservationSet/item/instancesSet/item")
        .into_iter()
        .map(|i| (i.text_at("instanceId"), i.text_at("instanceState/name")))
        .collect())
}

/// Instance states moto gave the model's own calls count as observed.
pub fn observe_all(instances: &mut Instances, states: &[(String, String)], now: Instant) {
    for (id, state) in states {
        observe(instances, id, state, now);
    }
}

#[cfg(test)]
mod tests {
    use super::super::xml;
    use super::*;

    fn times() -> AwsTimes {
        AwsTimes::realistic()
    }

    fn none() -> StateFilters {
        StateFilters::default()
    }

    fn describe(reservations: &[&[(&str, &str)]]) -> xml::Document {
        let mut out = String::from("<DescribeInstancesResponse><reservationSet>");
        for r in reservations {
            out.push_str("<item><reservationId>r</reservationId><instancesSet>");
            for (id, state) in *r {
                out.push_str(&format!(
                    "<item><instanceId>{id}</instanceId><instanceState><code>{}</code><name>{state}</name></instanceState></item>",
                    code(state)
                ));
            }
            out.push_str("</instancesSet></item>");
        }
        out.push_str("</reservationSet></DescribeInstancesResponse>");
        xml::parse(&out).unwrap()
    }

    fn states(doc: &xml::Document) -> Vec<(String, String, String)> {
        doc.root
            .all("reservationSet/item/instancesSet/item")
            .iter()
            .map(|i| {
                (
                    i.text_at("instanceId"),
                    i.text_at("instanceState/name"),
                    i.text_at("instanceState/code"),
                )
            })
            .collect()
    }

    #[test]
    fn a_launched_instance_is_pending_for_the_boot_time_then_running() {
        let (mut known, t0) = (Instances::new(), Instant::now());
        let run = xml::parse(
            "<RunInstancesResponse><instancesSet><item><instanceId>i-1</instanceId>\
             <instanceState><code>0</code><name>pending</name></instanceState></item>\
             </instancesSet></RunInstancesResponse>",
        )
        .unwrap();
        changed(&mut known, &run.root, t0);
        for (at, shown) in [(0, "pending"), (19, "pending"), (20, "running")] {
            let mut doc = describe(&[&[("i-1", "running")]]);
            let now = t0 + Duration::from_secs(at);
            describe_instances(&mut known, &times(), now, &mut doc.root, &none());
            let code = code(shown).to_string();
            assert_eq!(
                states(&doc),
                [("i-1".into(), shown.into(), code)],
                "at {at} s"
            );
        }
        assert_eq!(
            known["i-1"].running_from(&times()),
            Some(t0 + Duration::from_secs(20))
        );
    }

    #[test]
    fn a_change_moto_made_unseen_shows_its_transition_from_when_it_was_first_seen() {
        let (mut known, t0) = (Instances::new(), Instant::now());
        let secs = Duration::from_secs;
        let mut doc = describe(&[&[("i-1", "running"), ("i-2", "running")]]);
        describe_instances(&mut known, &times(), t0, &mut doc.root, &none());
        assert_eq!(
            known["i-1"].running_from(&times()),
            None,
            "running before the model"
        );

        let at = t0 + secs(100);
        let mut doc = describe(&[&[("i-1", "stopped"), ("i-2", "terminated")]]);
        describe_instances(&mut known, &times(), at, &mut doc.root, &none());
        let shown: Vec<_> = states(&doc).into_iter().map(|s| (s.1, s.2)).collect();
        assert_eq!(
            shown,
            [
                ("stopping".into(), "64".into()),
                ("shutting-down".into(), "32".into())
            ]
        );
        let mut doc = describe(&[&[("i-1", "stopped"), ("i-2", "terminated")]]);
        describe_instances(&mut known, &times(), at + secs(15), &mut doc.root, &none());
        let shown: Vec<_> = states(&doc).into_iter().map(|s| s.1).collect();
        assert_eq!(shown, ["stopped", "terminated"]);
    }

    #[test]
    fn state_filters_apply_to_the_shown_states_and_empty_reservations_go() {
        let (mut known, t0) = (Instances::new(), Instant::now());
        changed(
            &mut known,
            &xml::parse(
                "<R><instancesSet><item><instanceId>i-new</instanceId>\
                 <instanceState><name>pending</name></instanceState></item></instancesSet></R>",
            )
            .unwrap()
            .root,
            t0,
        );
        let mut answer = |body: &[u8]| {
            let mut form = Form::parse(body);
            let filters = StateFilters::take(&mut form);
            assert_eq!(
                form.0,
                [("Action".to_string(), "DescribeInstances".to_string())]
            );
            let mut doc = describe(&[
                &[("i-new", "running")],
                &[("i-old", "running"), ("i-new2", "stopped")],
            ]);
            describe_instances(&mut known, &times(), t0, &mut doc.root, &filters);
            doc
        };
        let pending = answer(
            b"Action=DescribeInstances&Filter.1.Name=instance-state-code&Filter.1.Value.1=0",
        );
        assert_eq!(
            states(&pending),
            [("i-new".into(), "pending".into(), "0".into())]
        );
        let doc = answer(
            b"Action=DescribeInstances&Filter.1.Name=instance-state-name&Filter.1.Value.1=running",
        );
        assert_eq!(
            states(&doc),
            [("i-old".into(), "running".into(), "16".into())]
        );
        assert_eq!(doc.root.all("reservationSet/item").len(), 1);
    }

    #[test]
    fn stop_and_terminate_answers_start_their_transitions() {
        let (mut known, t0) = (Instances::new(), Instant::now());
        let answer = xml::parse(
            "<StopInstancesResponse><instancesSet><item><instanceId>i-1</instanceId>\
             <currentState><code>64</code><name>stopping</name></currentState>\
             <previousState><code>16</code><name>running</name></previousState></item>\
             </instancesSet></StopInstancesResponse>",
        )
        .unwrap();
        changed(&mut known, &answer.root, t0);
        assert_eq!(known["i-1"].shown(&times(), t0), "stopping");
        assert_eq!(
            known["i-1"].shown(&times(), t0 + Duration::from_secs(15)),
            "stopped"
        );
        // moto then reports it stopped: nothing new.
        observe(&mut known, "i-1", "stopped", t0 + Duration::from_secs(1));
        assert_eq!(
            known["i-1"].shown(&times(), t0 + Duration::from_secs(14)),
            "stopping"
        );
    }

    #[test]
    fn new_images_are_pending_and_state_filters_agree() {
        let (mut images, t0) = (Images::new(), Instant::now());
        image_created(
            &mut images,
            &xml::parse("<CreateImageResponse><imageId>ami-new</imageId></CreateImageResponse>")
                .unwrap()
                .root,
            t0,
        );
        let answer = "<DescribeImagesResponse><imagesSet>\
            <item><imageId>ami-new</imageId><imageState>available</imageState></item>\
            <item><imageId>ami-old</imageId><imageState>available</imageState></item>\
            </imagesSet></DescribeImagesResponse>";
        let shown = |at: u64, filters: &[Vec<String>]| {
            let mut doc = xml::parse(answer).unwrap();
            let now = t0 + Duration::from_secs(at);
            describe_images(&images, &times(), now, &mut doc.root, filters);
            doc.root
                .all("imagesSet/item")
                .iter()
                .map(|i| format!("{}={}", i.text_at("imageId"), i.text_at("imageState")))
                .collect::<Vec<_>>()
        };
        assert_eq!(shown(0, &[]), ["ami-new=pending", "ami-old=available"]);
        assert_eq!(
            shown(239, &[vec!["available".into()]]),
            ["ami-old=available"]
        );
        assert_eq!(shown(240, &[]), ["ami-new=available", "ami-old=available"]);
    }
}
