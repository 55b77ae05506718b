//! The restart CronJob with its last Job, and the failed migration hook Job.

use std::collections::BTreeMap;

use k8s_openapi::Resource;
use k8s_openapi::api::batch::v1::{
    CronJob, CronJobSpec, CronJobStatus, Job, JobCondition, JobSpec, JobStatus, JobTemplateSpec,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::events::{EventPlan, Involved};
use super::pods::{Extra, PodPlan, PodState};
use super::tables::{Shape, Workload};
use super::{APP_NAME, FAULT_ANNOTATION, Gen, INSTANCE, MINUTE, PARAGON, labels, s, time};
use crate::store::{Cell, Res, human_duration};
use crate::{Fault, SandboxError};

impl Gen<'_> {
    pub(super) fn restart_cronjob(&mut self) -> Result<(), SandboxError> {
        let name = "restart-paragon-pods-cronjob";
        let l = labels(&[(INSTANCE, "paragon-on-prem"), (APP_NAME, name)]);
        let mut meta = self.meta(Some(PARAGON), name, Some(l.clone()), self.installed + 60);
        meta.annotations = Some(labels(&[
            ("meta.helm.sh/release-name", "paragon-on-prem"),
            ("meta.helm.sh/release-namespace", PARAGON),
        ]));
        let cron_owner = Self::owner::<CronJob>(name, &meta);
        let cron_uid = cron_owner.uid.clone();
        let started = self.restart;
        let finished = self.restart + 38;
        let job_name = format!("{name}-{}", self.restart / 60);
        let job_template = |l: &BTreeMap<String, String>| {
            JobTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(l.clone()),
                ..Default::default()
            }),
            spec: Some(JobSpec {
                backoff_limit: Some(2),
                template: PodTemplateSpec {
                    metadata: None,
                    spec: Some(PodSpec {
                        containers: vec![Container {
                            name: "kubectl".into(),
                            image: s("docker.io/bitnami/kubectl:1.33"),
                            command: Some(vec![
                                "/bin/sh".into(),
                                "-c".into(),
                                "kubectl rollout restart deployment -n paragon -l app.kubernetes.io/instance=paragon-on-prem".into(),
                            ]),
                            ..Default::default()
                        }],
                        restart_policy: s("OnFailure"),
                        service_account_name: s("paragon-on-prem"),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
        }
        };
        let cells = vec![
            Cell::text(name),
            Cell::text("0 14 * * *"),
            Cell::text("<none>"),
            Cell::Bool(false),
            Cell::Int(0),
            Cell::AgeOr(Some(started), "<none>"),
            Cell::Age(self.installed + 60),
        ];
        let cron = CronJob {
            metadata: meta,
            spec: Some(CronJobSpec {
                schedule: "0 14 * * *".into(),
                concurrency_policy: s("Forbid"),
                successful_jobs_history_limit: Some(1),
                failed_jobs_history_limit: Some(1),
                suspend: Some(false),
                job_template: job_template(&l),
                ..Default::default()
            }),
            status: Some(CronJobStatus {
                active: None,
                last_schedule_time: time(started),
                last_successful_time: time(finished),
            }),
        };
        self.push(Res::CronJobs, cron, vec![], cells)?;

        let mut jl = l.clone();
        jl.insert("batch.kubernetes.io/job-name".into(), job_name.clone());
        let mut jmeta = self.meta(Some(PARAGON), &job_name, Some(jl.clone()), started);
        jmeta.owner_references = Some(vec![cron_owner]);
        let job_owner = Self::owner::<Job>(&job_name, &jmeta);
        let cells = vec![
            Cell::text(job_name.as_str()),
            Cell::text("Complete"),
            Cell::text("1/1"),
            Cell::text(human_duration(finished - started)),
            Cell::Age(started),
        ];
        let cond = |t: &str| JobCondition {
            type_: t.into(),
            status: "True".into(),
            last_probe_time: time(finished),
            last_transition_time: time(finished),
            ..Default::default()
        };
        let mut tmpl = job_template(&jl).spec.unwrap_or_default();
        tmpl.completions = Some(1);
        tmpl.parallelism = Some(1);
        let job = Job {
            metadata: jmeta,
            spec: Some(tmpl),
            status: Some(JobStatus {
                succeeded: Some(1),
                ready: Some(0),
                start_time: time(started),
                completion_time: time(finished),
                conditions: Some(vec![cond("SuccessCriteriaMet"), cond("Complete")]),
                ..Default::default()
            }),
        };
        self.push(Res::Jobs, job, vec!["1".into()], cells)?;

        let kubectl = Workload {
            namespace: PARAGON,
            release: "paragon-on-prem",
            name: "kubectl",
            shape: Shape::Deployment,
            replicas: 1,
            image: "docker.io/bitnami/kubectl:1.33".into(),
            port: 8080,
            probe: None,
            cpu: "50m",
            memory: "64Mi",
            storage: None,
        };
        jl.insert(
            "batch.kubernetes.io/controller-uid".into(),
            job_owner.uid.clone(),
        );
        let pod_name = format!("{job_name}-{}", self.rng.suffix(5));
        let node = self.take_node();
        self.pod(PodPlan {
            w: &kubectl,
            name: pod_name,
            labels: jl,
            owner: job_owner.clone(),
            node: Some(node),
            created: started,
            state: PodState::Finished {
                finished,
                failed: false,
            },
            fault: None,
            image: kubectl.image.clone(),
            memory: kubectl.memory,
            restart_policy: "OnFailure",
            claim: None,
            extra: Extra::None,
        })?;
        let cron_ref = Involved {
            kind: CronJob::KIND,
            api_version: CronJob::API_VERSION,
            namespace: PARAGON,
            name: name.to_string(),
            uid: cron_uid,
        };
        let job_ref = Involved {
            kind: Job::KIND,
            api_version: Job::API_VERSION,
            namespace: PARAGON,
            name: job_name.clone(),
            uid: job_owner.uid,
        };
        self.event(EventPlan {
            about: &cron_ref,
            reason: "SuccessfulCreate",
            message: &format!("Created job {job_name}"),
            type_: "Normal",
            component: "cronjob-controller",
            first: started,
            last: started,
            count: 1,
            fault: None,
        })?;
        self.event(EventPlan {
            about: &cron_ref,
            reason: "SawCompletedJob",
            message: &format!("Saw completed job: {job_name}, condition: Complete"),
            type_: "Normal",
            component: "cronjob-controller",
            first: finished + 1,
            last: finished + 1,
            count: 1,
            fault: None,
        })?;
        self.event(EventPlan {
            about: &job_ref,
            reason: "Completed",
            message: "Job completed",
            type_: "Normal",
            component: "job-controller",
            first: finished,
            last: finished,
            count: 1,
            fault: None,
        })
    }

    /// A Helm pre-upgrade hook Job `migrations-postgres-hermes` that failed and, as Helm
    /// deletes these hooks only on success, stayed behind with its failed pod.
    pub(super) fn failed_migration(&mut self) -> Result<(), SandboxError> {
        let name = "migrations-postgres-hermes";
        let started = self.now - 30 * MINUTE;
        let finished = started + 45;
        let fault = Some(Fault::MigrationFailed);
        let l = labels(&[
            (INSTANCE, "paragon-on-prem"),
            (APP_NAME, name),
            ("batch.kubernetes.io/job-name", name),
        ]);
        let mut meta = self.meta(Some(PARAGON), name, Some(l.clone()), started);
        let mut a = labels(&[
            ("helm.sh/hook", "pre-install,pre-upgrade"),
            (
                "helm.sh/hook-delete-policy",
                "before-hook-creation,hook-succeeded",
            ),
            ("helm.sh/hook-weight", "-5"),
        ]);
        a.insert(
            FAULT_ANNOTATION.into(),
            Fault::MigrationFailed.name().into(),
        );
        meta.annotations = Some(a);
        let owner = Self::owner::<Job>(name, &meta);
        let image = format!("docker.io/useparagon/hermes:{}", self.app_version);
        let migrations = Workload {
            namespace: PARAGON,
            release: "paragon-on-prem",
            name: "migrations",
            shape: Shape::Deployment,
            replicas: 1,
            image: image.clone(),
            port: 1702,
            probe: None,
            cpu: "250m",
            memory: "512Mi",
            storage: None,
        };
        let cond = |t: &str, reason: &str| JobCondition {
            type_: t.into(),
            status: "True".into(),
            reason: s(reason),
            message: s("Job has reached the specified backoff limit"),
            last_probe_time: time(finished + 1),
            last_transition_time: time(finished + 1),
        };
        let template = self.pod_template(&migrations, &l, &image, "512Mi");
        let job = Job {
            metadata: meta,
            spec: Some(JobSpec {
                backoff_limit: Some(0),
                completions: Some(1),
                parallelism: Some(1),
                template,
                ..Default::default()
            }),
            status: Some(JobStatus {
                failed: Some(1),
                ready: Some(0),
                start_time: time(started),
                conditions: Some(vec![
                    cond("FailureTarget", "BackoffLimitExceeded"),
                    cond("Failed", "BackoffLimitExceeded"),
                ]),
                ..Default::default()
            }),
        };
        let cells = vec![
            Cell::text(name),
            Cell::text("Failed"),
            Cell::text("0/1"),
            Cell::text(human_duration(finished - started)),
            Cell::Age(started),
        ];
        self.push(Res::Jobs, job, vec!["0".into()], cells)?;
        let mut pl = l;
        pl.insert(
            "batch.kubernetes.io/controller-uid".into(),
            owner.uid.clone(),
        );
        let pod_name = format!("{name}-{}", self.rng.suffix(5));
        let node = self.take_node();
        self.pod(PodPlan {
            w: &migrations,
            name: pod_name,
            labels: pl,
            owner,
            node: Some(node),
            created: started,
            state: PodState::Finished {
                finished,
                failed: true,
            },
            fault,
            image,
            memory: "512Mi",
            restart_policy: "Never",
            claim: None,
            extra: Extra::None,
        })?;
        Ok(())
    }
}
