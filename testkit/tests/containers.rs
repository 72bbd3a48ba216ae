//! The broker image with etcd and SeaweedFS, all as containers started through the Docker API
//! with testcontainers. In CI that API is podman's: `./scripts/test.sh` builds the images from
//! the binaries it installed (the broker's from the test build), serves the API on a unix
//! socket and sets `DOCKER_HOST` and `KAFSCALE_TEST_CONTAINERS=1`; elsewhere the test says it
//! did not run. Three brokers round-trip records through the `kafscale` CLI, one is killed,
//! and the others serve every acknowledged record.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use testcontainers::core::WaitFor;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

const BUCKET: &str = "kafscale-test";
const ACCESS_KEY: &str = "kafscale-test";
const SECRET_KEY: &str = "kafscale-test-secret";

fn enabled() -> bool {
    if std::env::var("KAFSCALE_TEST_CONTAINERS").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("not run: KAFSCALE_TEST_CONTAINERS is not 1 (./scripts/test.sh sets it up)");
    false
}

fn image(name: &str) -> (String, String) {
    let tag = std::env::var(format!("KAFSCALE_TEST_IMAGE_{name}")).unwrap_or_else(|_| {
        panic!("KAFSCALE_TEST_IMAGE_{name} names the image (scripts/test.sh sets it)")
    });
    let (repo, tag) = tag.rsplit_once(':').unwrap();
    (repo.to_owned(), tag.to_owned())
}

/// A loopback port below the ephemeral range that nothing listens on.
fn free_port(taken: &mut Vec<u16>) -> u16 {
    loop {
        let port = 10_000 + (uuid::Uuid::new_v4().as_u128() % 10_000) as u16;
        if !taken.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            taken.push(port);
            return port;
        }
    }
}

/// Waits until something answers HTTP on the port (any status).
fn wait_http(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut head = [0u8; 5];
            if s.write_all(b"GET / HTTP/1.0\r\n\r\n").is_ok()
                && s.read_exact(&mut head).is_ok()
                && &head == b"HTTP/"
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{what} did not answer on {port}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The host's network: every server listens on loopback ports the test picks. (testcontainers'
/// `with_network` would try to create a network named "host" on podman.)
/// The `weed mini` flags shared with scripts/seaweedfs.sh (volume sizing among them).
fn mini_flags() -> impl Iterator<Item = String> {
    include_str!("../../scripts/seaweedfs-mini.flags")
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_owned)
}

fn host_network(config: &mut testcontainers::bollard::models::HostConfig) {
    config.network_mode = Some("host".to_owned());
}

fn cli() -> PathBuf {
    std::env::var_os("KAFSCALE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/kafscale")
        })
}

/// Runs the `kafscale` CLI; returns its stdout.
fn kafscale(args: &[&str], input: Option<&str>) -> String {
    try_kafscale(args, input).unwrap_or_else(|e| panic!("kafscale {args:?}: {e}"))
}

/// Runs the `kafscale` CLI; its stdout, or its stderr if it failed.
fn try_kafscale(args: &[&str], input: Option<&str>) -> Result<String, String> {
    let mut child = Command::new(cli())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.unwrap_or("").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(String::from_utf8(out.stdout).unwrap())
}

fn sorted_lines(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines.sort();
    lines
}

async fn broker(
    id: i32,
    ports: &mut Vec<u16>,
    etcd: u16,
    s3: u16,
) -> (ContainerAsync<GenericImage>, String) {
    let (repo, tag) = image("BROKER");
    let (kafka, http) = (free_port(ports), free_port(ports));
    let container = GenericImage::new(repo, tag)
        .with_wait_for(WaitFor::message_on_stderr("broker started"))
        .with_host_config_modifier(host_network)
        .with_env_var("KAFSCALE_LISTEN", format!("127.0.0.1:{kafka}"))
        .with_env_var("KAFSCALE_HTTP_LISTEN", format!("127.0.0.1:{http}"))
        .with_env_var("KAFSCALE_METADATA", format!("etcd://127.0.0.1:{etcd}/tc"))
        .with_env_var("KAFSCALE_OBJECT_STORE", format!("s3://{BUCKET}/tc"))
        .with_env_var("KAFSCALE_BROKER_ID", id.to_string())
        .with_env_var("KAFSCALE_BROKER_SESSION_TIMEOUT_MS", "3000")
        .with_env_var("KAFSCALE_FLUSH_MS", "5")
        .with_env_var("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{s3}"))
        .with_env_var("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .with_env_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .with_env_var("AWS_REGION", "us-east-1")
        .with_env_var("AWS_ALLOW_HTTP", "true")
        .with_startup_timeout(Duration::from_secs(60))
        .start()
        .await
        .unwrap();
    (container, format!("127.0.0.1:{kafka}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_broker_containers_round_trip_and_survive_a_kill() {
    if !enabled() {
        return;
    }
    let mut ports = Vec::new();
    let (etcd_port, peer) = (free_port(&mut ports), free_port(&mut ports));
    let (repo, tag) = image("ETCD");
    let _etcd = GenericImage::new(repo, tag)
        .with_wait_for(WaitFor::message_on_stderr("ready to serve client requests"))
        .with_host_config_modifier(host_network)
        .with_cmd([
            "--name".to_owned(),
            "tc".into(),
            "--data-dir".into(),
            "/data/etcd".into(),
            "--listen-client-urls".into(),
            format!("http://127.0.0.1:{etcd_port}"),
            "--advertise-client-urls".into(),
            format!("http://127.0.0.1:{etcd_port}"),
            "--listen-peer-urls".into(),
            format!("http://127.0.0.1:{peer}"),
            "--initial-advertise-peer-urls".into(),
            format!("http://127.0.0.1:{peer}"),
            "--initial-cluster".into(),
            format!("tc=http://127.0.0.1:{peer}"),
        ])
        .start()
        .await
        .unwrap();

    // SeaweedFS takes five ports and five more 10000 above them for gRPC.
    let base = loop {
        let base = free_port(&mut ports);
        if base < 19_990
            && (0..5).all(|i| {
                TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                    && TcpListener::bind(("127.0.0.1", base + 10_000 + i)).is_ok()
            })
        {
            ports.extend((0..5).flat_map(|i| [base + i, base + 10_000 + i]));
            break base;
        }
    };
    let (repo, tag) = image("SEAWEEDFS");
    let _s3 = GenericImage::new(repo, tag)
        .with_wait_for(WaitFor::Nothing)
        .with_host_config_modifier(host_network)
        .with_env_var("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        .with_env_var("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .with_cmd(
            ["mini".to_owned(), "-dir=/data".into()]
                .into_iter()
                .chain(mini_flags())
                .chain([
                    format!("-s3.port={base}"),
                    format!("-master.port={}", base + 1),
                    format!("-volume.port={}", base + 2),
                    format!("-filer.port={}", base + 3),
                    format!("-admin.port={}", base + 4),
                    "-metricsPort=0".into(),
                    format!("-bucket={BUCKET}"),
                ]),
        )
        .start()
        .await
        .unwrap();
    wait_http(base, "the S3 gateway");

    let mut brokers = Vec::new();
    for id in 1..=3 {
        brokers.push(broker(id, &mut ports, etcd_port, base).await);
    }
    let b = |i: usize| brokers[i].1.clone();
    kafscale(
        &[
            "topic",
            "create",
            "tc",
            "--partitions",
            "6",
            "--bootstrap",
            &b(0),
        ],
        None,
    );
    let first: String = (0..300).map(|i| format!("before-{i}\n")).collect();
    kafscale(&["produce", "tc", "--bootstrap", &b(1)], Some(&first));
    let read = |on: String, n: usize| {
        kafscale(
            &[
                "consume",
                "tc",
                "--from-beginning",
                "--max",
                &n.to_string(),
                "--timeout-ms",
                "60000",
                "--bootstrap",
                &on,
            ],
            None,
        )
    };
    assert_eq!(sorted_lines(&read(b(2), 300)), sorted_lines(&first));

    // Killed without a hand-over: its lease runs out, the others take its partitions.
    brokers[2].0.stop_with_timeout(Some(0)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        // While the killed broker is still listed, describing may fail to reach it.
        let described = try_kafscale(
            &["topic", "describe", "tc", "--json", "--bootstrap", &b(0)],
            None,
        );
        let leaders: Vec<_> = described
            .iter()
            .flat_map(|d| serde_json::from_str::<serde_json::Value>(d))
            .flat_map(|json| json["partitions"].as_array().cloned().unwrap_or_default())
            .map(|p| p["leader"].as_i64())
            .collect();
        if leaders.len() == 6 && leaders.iter().all(|l| matches!(l, Some(1 | 2))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partitions not taken over: {leaders:?} {described:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let second: String = (0..300).map(|i| format!("after-{i}\n")).collect();
    kafscale(&["produce", "tc", "--bootstrap", &b(0)], Some(&second));
    let all = format!("{first}{second}");
    assert_eq!(sorted_lines(&read(b(1), 600)), sorted_lines(&all));
}
