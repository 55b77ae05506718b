//! The command line, and only the command line: clap definitions from which `--help`, the
//! shell completions and the man pages are all generated. No logic lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::engine::ArgValueCompleter;

use crate::output::Format;

/// Operate an on-premise Paragon installation through its SSH bastion.
#[derive(Debug, Parser)]
#[command(name = "paragon-admin", version, propagate_version = true)]
// `--version` adds the git revision (build.rs); `-V` and the man pages keep the bare version.
#[command(long_version = env!("PARAGON_ADMIN_LONG_VERSION"))]
#[command(
    long_about = "Operate an on-premise Paragon installation through its SSH bastion: a shell, \
kubectl and helm on the bastion, forwards to the private services and the Kubernetes API, and a \
health report of the whole installation, with host keys checked as strictly as OpenSSH does. \
`demo` shows every feature on this machine with nothing to set up; `init` creates a profile.",
    after_help = "Examples:\n  paragon-admin demo\n  paragon-admin init\n  paragon-admin ssh\n  paragon-admin ssh -- uptime\n  paragon-admin health\n  paragon-admin forward grafana kibana\n  paragon-admin kubectl get pods -n paragon\n  paragon-admin --profile staging helm list -A"
)]
pub struct Cli {
    #[command(flatten)]
    pub globals: Globals,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command takes; shown after each command's own.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct Globals {
    /// The config file [default: $PARAGON_ADMIN_CONFIG, else the platform config folder's
    /// paragon-admin/config.toml]
    // Not clap's `env`: an empty variable means unset, and the profile's error must say
    // when its name came from the environment; `config` reads both variables.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The profile to use [default: $PARAGON_ADMIN_PROFILE, else the file's default_profile,
    /// else its only profile]
    #[arg(
        long,
        short = 'p',
        global = true,
        value_name = "NAME",
        add = ArgValueCompleter::new(crate::complete::complete_profiles)
    )]
    pub profile: Option<String>,
    /// How to print results
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// Log more to stderr (-v info, -vv debug, -vvv trace)
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Print only errors
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Connect directly for this command, without the profile's kept agent
    #[arg(long, global = true)]
    pub no_agent: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open a shell on the bastion, or run one command there
    #[command(
        long_about = "Open an interactive shell on the bastion with a terminal of this one's size, \
or run one command there. The command's words are joined with spaces, as OpenSSH does; its \
exit status becomes ours.",
        after_help = "Examples:\n  paragon-admin ssh\n  paragon-admin ssh -- df -h /\n  tar c dir | paragon-admin ssh -- tar x -C /tmp"
    )]
    Ssh(SshArgs),
    /// Run kubectl on the bastion, every argument passed exactly as given
    #[command(
        long_about = "Run kubectl on the bastion with every argument after `kubectl` passed exactly \
as given, flags such as -v, -q, --output and --help included, and return its exit status. \
Options of paragon-admin (--profile, --config, -v) go before `kubectl`.",
        disable_help_flag = true,
        after_help = "Examples:\n  paragon-admin kubectl get pods -n paragon\n  paragon-admin kubectl -v 6 get ns\n  paragon-admin --profile staging kubectl logs -n paragon deploy/hermes --tail 50"
    )]
    Kubectl(PassthroughArgs),
    /// Run helm on the bastion, every argument passed exactly as given
    #[command(
        long_about = "Run helm on the bastion with every argument after `helm` passed exactly as \
given, flags such as --namespace, --output and --help included, and return its exit status. \
Options of paragon-admin (--profile, --config, -v) go before `helm`.",
        disable_help_flag = true,
        after_help = "Examples:\n  paragon-admin helm --namespace paragon list\n  paragon-admin --profile staging helm history paragon-on-prem -n paragon"
    )]
    Helm(PassthroughArgs),
    /// Store, remove and list secrets in the platform keyring
    #[command(
        long_about = "Store, remove and list secrets in the platform keyring (service `paragon-admin`). \
A key passphrase is looked up as PROFILE/identity-passphrase, the health check's Postgres password \
as PROFILE/postgres-password. `set` reads the value from stdin when it is not a terminal, else \
asks for it hidden; `list` prints names only, never values (--output json for scripts).",
        after_help = "Examples:\n  paragon-admin secrets set prod/identity-passphrase\n  paragon-admin secrets set prod/postgres-password < pw.txt\n  paragon-admin secrets list --output json\n  paragon-admin secrets delete prod/identity-passphrase"
    )]
    Secrets {
        #[command(subcommand)]
        action: SecretsAction,
    },
    /// Per-person, expiring access: OpenSSH certificate authorities, grants and revocations
    #[command(
        long_about = "Sign OpenSSH certificates instead of sharing keys. `ca init` makes an Ed25519 \
CA (encrypted; its passphrase only in the keyring), `grant` signs a person's public key for some \
principals and a time, `sign-host` signs a bastion's host key, `list` shows what was signed (a \
local ledger), `revoke` writes a key revocation list (KRL) for the bastion's RevokedKeys. Files \
live in CONFIG/paragon-admin/access.",
        after_help = "Examples:\n  paragon-admin access ca init ops\n  paragon-admin access ca show\n  paragon-admin access grant --key alice.pub --principal ops --valid-for 8h --key-id alice@example.com\n  paragon-admin access ca init hosts --host\n  paragon-admin access sign-host --ca hosts --key ssh_host_ed25519_key.pub --principal bastion.example.com --valid-for 52w\n  paragon-admin access list --output json\n  paragon-admin access revoke alice@example.com"
    )]
    Access {
        #[command(subcommand)]
        action: AccessAction,
    },
    /// Try every feature in one command, on this machine, with nothing to set up
    #[command(
        long_about = "Start on loopback a simulated Paragon installation (a Kubernetes API server with \
two faults switched on), a demo web page standing in for Grafana, and an SSH bastion that only \
forwards to them; connect to the bastion with strict host-key checking; run the health report \
through it; open a forward to the demo page and print its URL. Everything stops when the tour \
ends (in seconds), or with --keep-open at Ctrl-C. Nothing outside this machine is contacted and \
nothing is written outside a temporary folder that is removed at the end.",
        after_help = "Examples:\n  paragon-admin demo\n  paragon-admin demo --keep-open"
    )]
    Demo(DemoArgs),
    /// Create a profile: a wizard on a terminal, or flags in a script
    #[command(
        long_about = "Create a profile in the config file (--config, else the default path): the \
bastion's host and port, the user, the identity file (keys in ~/.ssh and the agent's are \
offered), a jump host and the host-key policy. A Host alias of ~/.ssh/config (given as the host \
or with --from-ssh-config) is resolved by OpenSSH itself (`ssh -G`). On a terminal the wizard \
then connects once to show the bastion's host key fingerprint and record it in known_hosts, \
offers to store the key's passphrase in the keyring, and to write the default service forwards. \
Every answer can be given as a flag; with --non-interactive nothing is asked and nothing is \
connected. An existing profile is replaced only with --force, and only the keys asked about: \
the rest of the file, comments included, is kept.",
        after_help = "Examples:\n  paragon-admin init\n  paragon-admin init --from-ssh-config paragon-prod\n  paragon-admin init --non-interactive --profile prod --host bastion.example.com --user ops \\\n      --identity-file ~/.ssh/id_ed25519 --strict-host-key-checking accept-new"
    )]
    Init(InitArgs),
    /// Check the installation: cluster, workloads, certificates, datastores, monitoring
    #[command(
        long_about = "Check the installation in one pass: the Kubernetes API and nodes, workloads, \
pods, PVCs, warning events, Helm releases, TLS certificates, the profile's datastores and the \
monitoring services. Every connection goes through the bastion (or, with --local, straight from \
this machine). Exit status 0 when nothing failed (warnings allowed), 1 when something failed, \
255 when the bastion could not be reached.",
        after_help = "Examples:\n  paragon-admin health\n  paragon-admin health --output json | jq '.checks[] | select(.status == \"fail\")'\n  paragon-admin health --local --kubeconfig ~/.kube/config --timeout 30"
    )]
    Health(HealthArgs),
    /// Alert rules and a Grafana dashboard for the capacity signals the health report checks
    #[command(
        long_about = "Print what an installation without monitoring of its own needs to watch the \
capacity signals the health report checks (area `capacity`): Prometheus alerting rules and a \
Grafana dashboard, both from the same queries and the profile's [thresholds] (the defaults \
without a profile), and which of those rules the installation's Prometheus has loaded.",
        after_help = "Examples:\n  paragon-admin monitoring rules > paragon-rules.yml && promtool check rules paragon-rules.yml\n  paragon-admin monitoring rules --format kubernetes | paragon-admin kubectl apply -f -\n  paragon-admin monitoring dashboard > paragon-capacity.json\n  paragon-admin monitoring status"
    )]
    Monitoring {
        #[command(subcommand)]
        action: MonitoringAction,
    },
    /// Read the logs of every pod of a Paragon service, through the bastion
    #[command(
        long_about = "Read the logs of every pod of a Paragon service (its `app.kubernetes.io/name` \
label in the installation's namespace; a pod, Deployment, StatefulSet or DaemonSet name works \
too), through the bastion. Each line is prefixed with its pod (and container when the pod has \
several), one colour per pod on a terminal. With -f every pod is followed at once, pods that \
start later are picked up and pods that go away are noted; Ctrl-C ends it with exit 0.",
        after_help = "Examples:\n  paragon-admin logs hermes --since 1h\n  paragon-admin logs worker-workflows -f --grep 'error'\n  paragon-admin logs cerberus --tail 100 --output json | jq -r .line"
    )]
    Logs(LogsArgs),
    /// Pack what Paragon's support needs into one tar.gz, every secret redacted
    #[command(
        long_about = "Collect, through the bastion, what Paragon's support needs into \
paragon-bundle-PROFILE-YYYYMMDDTHHMMSSZ.tar.gz (mode 0600): cluster-resources/ (workloads, pods, \
services, PVCs, nodes, events; config maps and secrets by name and key names only), logs/ of the \
installation's pods, helm/ release history, health.json, monitoring/, datastores/, bastion/ and \
manifest.json (what was collected, from where, how long it took, what failed). Every file passes \
through a redactor (bearer tokens, JWTs, private keys, AWS keys, passwords in URLs and connection \
strings, password/secret/token/api_key values, secret-named environment variables); \
redactions.json counts what each rule hid per file. Each collector has a deadline and the whole \
bundle --timeout: what did not finish is listed in the manifest and the bundle is still written. \
Exit status 0 when complete, 1 when a collector failed, 255 when the bastion cannot be reached.",
        after_help = "Examples:\n  paragon-admin bundle\n  paragon-admin bundle --preview\n  paragon-admin bundle --since 2h --timeout 60 --file /tmp/support.tar.gz"
    )]
    Bundle(BundleArgs),
    /// Walk the path to the bastion and past it, hop by hop, and say which hop broke
    #[command(
        long_about = "Walk the path every command takes and say, hop by hop, what works, how long \
it took and what was found; the first hop that fails gets one sentence with its likely cause and \
the fix. The hops: the config (file, profile, identity file readable and private, known_hosts \
entry), the bastion or its jump host (name resolution, TCP, what answers on the port, key \
exchange, host key, the key accepted or the public key the bastion would need), the kept \
connection (its agent), then from the bastion the API server (TCP, /version with TLS and the \
kubeconfig's credentials), each datastore and service (a name the bastion cannot resolve, a \
refused port, its PermitOpen policy), and the API route for services the bastion cannot reach. \
Exit status 0 when every hop works, 1 when a hop past the bastion fails, 255 when the bastion is \
not reached, 2 for a config error.",
        after_help = "Examples:\n  paragon-admin doctor\n  paragon-admin doctor --profile staging --output json"
    )]
    Doctor(DoctorArgs),
    /// Forward local ports to services in the private network, through the bastion
    #[command(
        long_about = forward_about(),
        after_help = "Examples:\n  paragon-admin forward grafana kibana\n  paragon-admin forward --detach grafana\n  paragon-admin forward --list\n  paragon-admin forward --stop all\n  paragon-admin forward 3000:grafana --open\n  paragon-admin forward 5432:postgres.paragon.svc:5432\n  paragon-admin forward --socks 1080\n  paragon-admin forward prometheus --output json"
    )]
    Forward(ForwardArgs),
    /// Forward the Kubernetes API and print a kubeconfig that uses the forward
    #[command(
        long_about = "Forward the cluster's private API server (the profile's [kube] api_server, else \
the server in its kubeconfig) to a local port, so that kubectl, k9s or Lens on this machine work \
through the bastion; the kubeconfig's tls-server-name keeps TLS verifying. The credentials come \
from the profile's kube.kubeconfig, else from the bastion's own kubeconfig.\n\n\
Without --write or --merge: print a kubeconfig holding the credentials and serve the forward in \
the foreground, like `forward`.\n\n\
With --write FILE or --merge: a kubeconfig that heals itself, holding no secret. Its server is \
the API forward that the profile's agent holds on a stable local port; its user is the exec \
credential plugin `paragon-admin kube-credential --profile PROFILE`, which kubectl runs before it \
dials: the plugin starts the agent and the forward when they are not running (after a reboot, a \
sleep, a bastion restart) and prints the credential as an ExecCredential for kubectl only, valid \
for 10 minutes. The command returns once the forward listens.",
        after_help = "Examples:\n  paragon-admin kubeconfig --write ~/.kube/paragon-prod\n  KUBECONFIG=~/.kube/paragon-prod kubectl get pods -n paragon\n  paragon-admin --profile prod kubeconfig --merge && kubectl --context paragon-prod get ns\n  paragon-admin kubeconfig --local-port 6443 > /tmp/kc"
    )]
    Kubeconfig(KubeconfigArgs),
    /// The exec credential plugin of the kubeconfig `kubeconfig --write` writes (kubectl runs it)
    #[command(
        long_about = "Make sure the profile's agent runs and holds the API forward on its stable port, \
then print the profile's Kubernetes credential (from kube.kubeconfig, else the bastion's own \
kubeconfig, fetched into memory) as a client.authentication.k8s.io/v1 ExecCredential on stdout, \
for kubectl. Errors are one line on stderr, which kubectl shows. Written into kubeconfigs by \
`kubeconfig --write` and `--merge`; not meant to be run by hand.",
        after_help = "Examples:\n  paragon-admin kube-credential --profile prod",
        hide = true
    )]
    KubeCredential,
    /// List the profiles in the config file
    #[command(
        after_help = "Examples:\n  paragon-admin profiles\n  paragon-admin profiles --output json"
    )]
    Profiles,
    /// Print a shell completion script, or write every shell's into a folder
    #[command(
        long_about = "Print the completion script for SHELL. The script asks paragon-admin for \
candidates as you type, so profile and service names come from your own config file.",
        after_help = "Examples:\n  paragon-admin completions bash > ~/.local/share/bash-completion/completions/paragon-admin\n  paragon-admin completions zsh > ~/.zfunc/_paragon-admin\n  paragon-admin completions fish > ~/.config/fish/completions/paragon-admin.fish"
    )]
    Completions(CompletionsArgs),
    /// Print the man page, or write every page into a folder
    #[command(
        after_help = "Examples:\n  paragon-admin man | man -l -\n  paragon-admin man --dir ~/.local/share/man/man1"
    )]
    Man(ManArgs),
    /// Show or stop the kept connections (one background agent per profile)
    #[command(
        long_about = "The first command of a profile that needs the bastion starts a background \
agent that keeps one authenticated SSH session and serves later commands of that profile through \
a private socket; it holds detached forwards (`forward --detach`) and reconnects when the bastion \
goes away. It stays for the profile's `persist` time after its last use (default 10m; `0` = no \
agent); --no-agent skips it for one command.",
        after_help = "Examples:\n  paragon-admin agent status\n  paragon-admin agent status --output json\n  paragon-admin agent stop\n  paragon-admin agent stop --all"
    )]
    Agent {
        #[command(subcommand)]
        action: AgentAction,
    },
    /// Serve a simulated Kubernetes API with a generated Paragon installation
    #[command(
        long_about = "Serve a simulated Kubernetes API server over HTTPS, with its own CA and a bearer \
token, holding a generated Paragon installation (the paragon namespace with its microservices, \
monitoring and logging, Helm releases, nodes, events). kubectl and the health checks work against \
it; faults can be switched on. It writes a kubeconfig for itself (mode 0600), prints the address \
it listens on to stdout, and runs until interrupted (SIGINT or SIGTERM), then removes the \
kubeconfig.",
        after_help = "Examples:\n  paragon-admin sandbox --kubeconfig-out /tmp/sandbox.kubeconfig\n  paragon-admin sandbox --nodes 500 --pods 10000\n  paragon-admin sandbox --fault crashloop --fault failed-release --output json"
    )]
    Sandbox(SandboxArgs),
}

/// `forward`'s long help; the built-in services are named from their table.
fn forward_about() -> String {
    format!(
        "Forward local ports to services in the private network, all over one SSH \
session to the bastion. A SPEC is a service name ({}, or one from the \
profile's [services] tables), LOCAL_PORT:SERVICE, or as with `ssh -L`, LOCAL_PORT:HOST:PORT or \
HOST:PORT (HOST as resolved on the bastion; LOCAL_PORT 0 = any free port); NAME=SPEC names \
the forward (for --list and --stop NAME). Every listener is \
bound before the bastion is contacted, so a port in use fails at once. When the bastion goes \
away the listeners stay open and the session is re-established; new connections wait for it. \
Stop with Ctrl-C. With --detach the profile's agent holds the forwards and the command returns \
once they listen; --list shows them and --stop NAME (or all) closes them.",
        crate::config::builtin_names()
    )
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep everything running after the tour, until Ctrl-C, to try the forward in a browser
    #[arg(long)]
    pub keep_open: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The profile's name, as --profile NAME (letters, digits, `-`, `_`, `.`)
    #[arg(long, value_name = "NAME", hide = true)]
    pub name: Option<String>,
    /// Make this profile the default_profile (the first profile always is)
    #[arg(long)]
    pub default: bool,
    /// The bastion's host name or address, or a Host alias of ~/.ssh/config
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// The bastion's SSH port [default: 22]
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// The user on the bastion [default: the local user]
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// The private key to log in with [default: the agent's keys, then ~/.ssh/id_*]
    #[arg(long, value_name = "FILE")]
    pub identity_file: Option<String>,
    /// The known_hosts file [default: ~/.ssh/known_hosts]
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<String>,
    /// A jump host to reach the bastion through, as `[user@]host[:port]`
    #[arg(long, value_name = "JUMP")]
    pub proxy_jump: Option<String>,
    /// What to do with a host key known_hosts does not hold: yes, accept-new or ask [default: ask]
    #[arg(long, value_name = "POLICY")]
    pub strict_host_key_checking: Option<String>,
    /// Take host, port, user, identity file and jump host from this Host of ~/.ssh/config
    #[arg(long, value_name = "ALIAS")]
    pub from_ssh_config: Option<String>,
    /// Ask nothing and connect nowhere: every answer comes from a flag or its default
    #[arg(long)]
    pub non_interactive: bool,
    /// Replace a profile of the same name (only the keys init asks about)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct CompletionsArgs {
    /// The shell to print the script for
    #[arg(value_enum)]
    pub shell: Option<Shell>,
    /// Write every shell's script into this folder instead
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write every page (the tool's and one per subcommand) into this folder
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    /// The address to listen on; port 0 picks a free port
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: std::net::SocketAddr,
    /// Where to write the kubeconfig [default: the user cache folder's paragon-admin/sandbox-PORT.kubeconfig]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig_out: Option<PathBuf>,
    /// Number of nodes (1 to 20000)
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=20_000))]
    pub nodes: u32,
    /// Total number of pods, up to 500000; the extra ones become worker replicas [default: the installation's own size]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(0..=500_000))]
    pub pods: Option<u32>,
    /// Seed for every generated name and choice
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// A fault to switch on (repeatable)
    #[arg(long = "fault", value_name = "KIND", value_parser = FaultParser)]
    pub faults: Vec<crate::sandbox::Fault>,
    /// Close a port-forward that carries nothing for this long, as the kubelet's
    /// streamingConnectionIdleTimeout does (e.g. 2s, 30m)
    #[arg(long, value_name = "DURATION", default_value = "4h",
          value_parser = crate::sandbox::parse_idle_timeout)]
    pub streaming_idle_timeout: std::time::Duration,
    /// The pods of SERVICE use PERCENT % of their memory limit in the metrics API
    /// (metrics.k8s.io; repeatable), e.g. hermes=98
    #[arg(long, value_name = "SERVICE=PERCENT")]
    pub memory_use: Vec<crate::sandbox::MemoryUse>,
}

#[derive(Debug, Args)]
pub struct SshArgs {
    /// The command to run instead of a shell (after `--`)
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PassthroughArgs {
    /// Arguments for the remote tool, every one passed as given (flags included); the
    /// options of paragon-admin go before the subcommand
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS",
        value_parser = clap::value_parser!(std::ffi::OsString)
    )]
    pub args: Vec<std::ffi::OsString>,
}

/// The subcommands whose every argument belongs to the remote tool.
const PASSTHROUGH: [&str; 2] = ["kubectl", "helm"];

/// Parses the command line. After `kubectl` or `helm` nothing is ours: clap sees the words up
/// to the subcommand, and the rest is handed over untouched (clap would otherwise take
/// `-v`, `-q`, `--output`, `--profile` or `--version` there as paragon-admin's own).
pub fn parse_from(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<Cli, clap::Error> {
    use clap::FromArgMatches;
    let args: Vec<std::ffi::OsString> = args.into_iter().collect();
    let cmd = command();
    let parse = |words: &[std::ffi::OsString]| {
        let matches = cmd.clone().try_get_matches_from(words)?;
        Cli::from_arg_matches(&matches)
    };
    let Some(at) = passthrough_at(&cmd, &args) else {
        return parse(&args);
    };
    let mut cli = parse(&args[..=at])?;
    if let Command::Kubectl(a) | Command::Helm(a) = &mut cli.command {
        a.args = args[at + 1..].to_vec();
    }
    Ok(cli)
}

/// The index of a `kubectl`/`helm` subcommand word, skipping the global options before it
/// (and the values of those that take one, as clap's definitions say).
fn passthrough_at(cmd: &clap::Command, args: &[std::ffi::OsString]) -> Option<usize> {
    let takes_value = |word: &str| {
        cmd.get_arguments().any(|a| {
            a.get_action().takes_values()
                && (a
                    .get_long()
                    .is_some_and(|l| word.strip_prefix("--") == Some(l))
                    || a.get_short()
                        .is_some_and(|s| word.strip_prefix('-') == Some(s.to_string().as_str())))
        })
    };
    let mut i = 1;
    while i < args.len() {
        // A word that is not UTF-8 before the subcommand is clap's to report.
        let word = args[i].to_str()?;
        if word == "--" {
            return None;
        }
        if !word.starts_with('-') {
            return PASSTHROUGH.contains(&word).then_some(i);
        }
        if takes_value(word) {
            i += 1;
        }
        i += 1;
    }
    None
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Connect straight from this machine (on the bastion itself, or inside the network)
    #[arg(long)]
    pub local: bool,
    /// A kubeconfig file on this machine [default: the profile's kube.kubeconfig, else the
    /// bastion's own, fetched into memory; with --local, $KUBECONFIG or ~/.kube/config]
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context [default: the profile's kube.context, else the current one]
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Seconds each check may take
    #[arg(long, value_name = "SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Exit 1 when any check could not run (forbidden, timed out), as when one fails
    #[arg(long)]
    pub strict: bool,
    /// How monitoring services are reached: the bastion (this machine with --local), the
    /// Kubernetes API (pods/portforward), or auto (the bastion, else the API); a service's
    /// `via` in the profile wins over auto
    #[arg(long, value_enum, value_name = "ROUTE", default_value = "auto")]
    pub via: crate::config::Via,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// A Paragon service, or a pod, Deployment, StatefulSet or DaemonSet
    #[arg(value_name = "SERVICE|POD|DEPLOYMENT",
          add = ArgValueCompleter::new(crate::complete::complete_paragon_services))]
    pub target: String,
    /// Follow the logs of every pod, including pods that start later
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only lines newer than this (e.g. 30s, 15m, 1h, 2d)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_secs)]
    pub since: Option<i64>,
    /// The last N lines of each container (with -f: of each container there at the start)
    #[arg(long, value_name = "N")]
    pub tail: Option<i64>,
    /// Only this container of each pod
    #[arg(long, short = 'c', value_name = "NAME")]
    pub container: Option<String>,
    /// The previous run of each container (a crashed or restarted one)
    #[arg(long, conflicts_with = "follow")]
    pub previous: bool,
    /// Only lines that match this regular expression
    #[arg(long, value_name = "REGEX")]
    pub grep: Option<regex::Regex>,
    /// Each line with the time the container wrote it
    #[arg(long)]
    pub timestamps: bool,
    /// The installation's namespace
    #[arg(long, short = 'n', value_name = "NAMESPACE", default_value = "paragon")]
    pub namespace: String,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Seconds each network step may take (a name lookup, a connect, a banner, a probe)
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct BundleArgs {
    /// The bundle file [default: paragon-bundle-PROFILE-YYYYMMDDTHHMMSSZ.tar.gz here]
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// List the files and what the redactor would hide in each, without writing the bundle
    #[arg(long, conflicts_with = "file")]
    pub preview: bool,
    /// Seconds the whole bundle may take; unfinished collectors are listed in the manifest
    #[arg(long, value_name = "SECS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Logs newer than this (e.g. 30m, 2h, 1d)
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration_secs)]
    pub since: i64,
    /// The installation's namespace
    #[arg(long, short = 'n', value_name = "NAMESPACE", default_value = "paragon")]
    pub namespace: String,
    /// Also collect each Helm release's user-supplied chart values (helm/RELEASE/values.yaml),
    /// redacted like every file
    #[arg(long)]
    pub include_values: bool,
}

/// `30s`, `15m`, `1h`, `2d` (or plain seconds) as seconds.
pub fn parse_duration_secs(s: &str) -> Result<i64, String> {
    let (digits, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, ""), |i| s.split_at(i));
    let n: i64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration: use e.g. 30s, 15m, 1h or 2d"))?;
    let factor = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("`{s}`: the unit must be s, m, h or d")),
    };
    n.checked_mul(factor)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("`{s}` is not a positive duration"))
}

#[derive(Debug, Args)]
pub struct ForwardArgs {
    /// What to forward: SERVICE, LOCAL_PORT:SERVICE, LOCAL_PORT:HOST:PORT or HOST:PORT, each
    /// optionally as NAME=SPEC
    #[arg(
        value_name = "SPEC",
        required_unless_present_any = ["socks", "list", "stop"],
        add = ArgValueCompleter::new(crate::complete::complete_services)
    )]
    pub specs: Vec<String>,
    /// Also run a SOCKS5 proxy on this local port (0 = any free port)
    #[arg(long, value_name = "PORT")]
    pub socks: Option<u16>,
    /// The local address to listen on; anything but loopback exposes the private network
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Open each service's URL in the browser once it is ready
    #[arg(long)]
    pub open: bool,
    /// How services are reached: the bastion, the Kubernetes API (pods/portforward), or auto
    /// (the bastion, else the API); a service's `via` in the profile wins over auto
    #[arg(long, value_enum, value_name = "ROUTE", default_value = "auto")]
    pub via: crate::config::Via,
    /// Hand the forwards to the profile's agent and return once they listen
    #[arg(long, conflicts_with_all = ["list", "stop", "open"])]
    pub detach: bool,
    /// List the forwards the profile's agent holds
    #[arg(long, conflicts_with_all = ["specs", "socks", "stop"])]
    pub list: bool,
    /// Close a detached forward by name, or `all`
    #[arg(
        long,
        value_name = "NAME",
        conflicts_with_all = ["specs", "socks"],
        add = ArgValueCompleter::new(crate::complete::complete_detached)
    )]
    pub stop: Option<String>,
}

#[derive(Debug, Args)]
pub struct KubeconfigArgs {
    /// The local port for the API server (0 = any free port) [default: the profile's own,
    /// chosen once and remembered in the state folder's ports.toml]
    #[arg(long, value_name = "PORT", conflicts_with = "healing")]
    pub local_port: Option<u16>,
    /// Write a kubeconfig that heals itself to FILE (mode 0600) and return: its user runs
    /// `paragon-admin kube-credential`, its server is the agent's API forward
    #[arg(long, value_name = "FILE", group = "healing")]
    pub write: Option<PathBuf>,
    /// Add that kubeconfig's context, cluster and user (paragon-PROFILE) to $KUBECONFIG's
    /// first file, else ~/.kube/config, keeping every other entry
    #[arg(long, group = "healing")]
    pub merge: bool,
    /// Allow --write to replace a default kubeconfig, and --merge an entry of the same name
    #[arg(long, requires = "healing")]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum AgentAction {
    /// The profile's agent: bastion, pid, up since, reconnects, channels, forwards
    Status,
    /// Stop the profile's agent (its detached forwards close)
    Stop {
        /// Stop every agent of this user, whatever their profile
        #[arg(long)]
        all: bool,
    },
    /// Run the agent in this process (started by the other commands)
    #[command(hide = true)]
    Run,
}

#[derive(Debug, Subcommand)]
pub enum MonitoringAction {
    /// Print Prometheus alerting rules: a warning and a critical rule per signal
    Rules {
        /// A Prometheus rule file, or a prometheus-operator PrometheusRule
        #[arg(long, value_enum, default_value_t = RulesFormat::Prometheus)]
        format: RulesFormat,
        /// How long a condition holds before its alert fires (Prometheus' `for`)
        #[arg(long = "for", value_name = "DURATION", default_value = "5m", value_parser = prometheus_duration)]
        hold: String,
    },
    /// Print a Grafana dashboard (JSON model): one row per group of signals
    Dashboard,
    /// Show which of the generated rules the installation's Prometheus has loaded and which fire
    #[command(
        long_about = "Ask the profile's Prometheus (the route the health report takes: the bastion, \
else the Kubernetes API) for its rules and alerts, and show each rule `monitoring rules` generates \
at the profile's thresholds: loaded in the group paragon-capacity or missing, and the subjects it \
fires for. Exits 0 when every rule is loaded, 1 when some are missing or Prometheus answered with \
an error, 255 when the bastion cannot be reached."
    )]
    Status(MonitoringStatusArgs),
    /// Put the rules and the dashboard into the monitoring release, with the bastion's kubectl
    #[command(
        long_about = "Put the dashboard and the rules (at the profile's thresholds) into the \
monitoring release's namespace with the bastion's own kubectl: the dashboard as the ConfigMap \
paragon-capacity-dashboard labelled grafana_dashboard=1, which the Grafana chart's dashboard \
sidecar loads; the rules as the PrometheusRule paragon-capacity when the cluster serves \
prometheusrules.monitoring.coreos.com (prometheus-operator), else as the ConfigMap \
paragon-capacity-rules holding the rule file, which the release's Prometheus must mount into its \
rule_files (see the README). --dry-run prints the manifests and what would change; --apply runs \
`kubectl apply -f -` on the bastion and says what changed. Exit status 0 when done, 1 when \
kubectl failed, 255 when the bastion cannot be reached.",
        after_help = "Examples:\n  paragon-admin monitoring install --dry-run\n  paragon-admin monitoring install --apply && paragon-admin monitoring status"
    )]
    Install(MonitoringInstallArgs),
}

#[derive(Debug, Args)]
#[group(id = "mode", required = true, multiple = false)]
pub struct MonitoringInstallMode {
    /// Print the manifests (stdout) and what would change (stderr); change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Apply them and say what changed
    #[arg(long)]
    pub apply: bool,
}

#[derive(Debug, Args)]
pub struct MonitoringInstallArgs {
    #[command(flatten)]
    pub mode: MonitoringInstallMode,
    /// How long a condition holds before its alert fires (Prometheus' `for`)
    #[arg(long = "for", value_name = "DURATION", default_value = "5m", value_parser = prometheus_duration)]
    pub hold: String,
}

#[derive(Debug, Args)]
pub struct MonitoringStatusArgs {
    /// Connect straight from this machine (on the bastion itself, or inside the network)
    #[arg(long)]
    pub local: bool,
    /// Seconds each request to Prometheus may take
    #[arg(long, value_name = "SECS", default_value_t = 15,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// How Prometheus is reached: the bastion (this machine with --local), the Kubernetes API
    /// (pods/portforward), or auto (the bastion, else the API); its `via` in the profile wins
    /// over auto
    #[arg(long, value_enum, value_name = "ROUTE", default_value = "auto")]
    pub via: crate::config::Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RulesFormat {
    /// A rule file for Prometheus' rule_files
    Prometheus,
    /// A monitoring.coreos.com/v1 PrometheusRule
    Kubernetes,
}

/// A Prometheus duration as `for:` takes it: digits and a unit (`0s`, `90s`, `5m`, `1h`).
fn prometheus_duration(s: &str) -> Result<String, String> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &s[digits.len()..];
    if !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && ["ms", "s", "m", "h", "d", "w", "y"].contains(&unit)
    {
        Ok(s.to_string())
    } else {
        Err("expected a number and a unit: 0s, 90s, 5m, 1h".into())
    }
}

#[derive(Debug, Subcommand)]
pub enum SecretsAction {
    /// Store a secret: from stdin when it is not a terminal, else from a hidden prompt
    Set {
        /// The secret's name, such as prod/identity-passphrase
        name: String,
    },
    /// Remove a secret
    Delete {
        /// The secret's name
        name: String,
    },
    /// List the names of the stored secrets (never their values)
    List,
}

#[derive(Debug, Subcommand)]
pub enum AccessAction {
    /// Make or show a certificate authority
    Ca {
        #[command(subcommand)]
        action: CaAction,
    },
    /// Sign a user's public key: writes KEY-cert.pub beside it
    Grant(GrantArgs),
    /// Sign a bastion's host key with a host CA: writes KEY-cert.pub beside it
    SignHost(SignArgs),
    /// List the certificates signed here (key id, principals, validity, serial)
    List,
    /// Revoke grants by serial or key id and write the KRL for the bastion's RevokedKeys
    Revoke {
        /// A serial number or key id from `access list`
        what: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaAction {
    /// Make an Ed25519 CA; its passphrase goes to the keyring, never to a file
    Init {
        /// The CA's name (letters, digits, . _ -)
        name: String,
        /// A host CA (signs bastion host keys) instead of a user CA
        #[arg(long)]
        host: bool,
    },
    /// Print the line for the bastion's TrustedUserCAKeys (user CA) or clients' known_hosts (host CA)
    Show {
        /// The CA (default: the only one)
        name: Option<String>,
    },
}

/// What every certificate needs: the key to sign, for whom, for how long, by which CA.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The public key file to sign (alice.pub, ssh_host_ed25519_key.pub)
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
    /// A principal: a user name for a grant, a host name (patterns allowed) for a host; repeat
    /// for more
    #[arg(long = "principal", required = true, value_name = "NAME")]
    pub principals: Vec<String>,
    /// How long it is valid: 90s, 30m, 8h, 7d, 52w
    #[arg(long, value_name = "DURATION")]
    pub valid_for: String,
    /// The key id the server logs (default: a grant's key comment, a host's first principal)
    #[arg(long)]
    pub key_id: Option<String>,
    /// The CA (default: the only one)
    #[arg(long)]
    pub ca: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct GrantArgs {
    #[command(flatten)]
    pub sign: SignArgs,
    /// Only the read-only forced command, no PTY, no forwarding but ports (for the API)
    #[arg(long)]
    pub read_only: bool,
}

/// The shells we write completion scripts for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

impl Shell {
    pub const ALL: [Shell; 5] = [
        Shell::Bash,
        Shell::Zsh,
        Shell::Fish,
        Shell::Powershell,
        Shell::Elvish,
    ];

    /// The file name the script is committed under in `completions/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Shell::Bash => "paragon-admin.bash",
            Shell::Zsh => "_paragon-admin",
            Shell::Fish => "paragon-admin.fish",
            Shell::Powershell => "_paragon-admin.ps1",
            Shell::Elvish => "paragon-admin.elv",
        }
    }
}

/// The global options each subcommand ignores: its `--help`, man page and completions do not
/// show them, yet they parse there as everywhere (a script may pass them to every command).
const IGNORED_GLOBALS: &[(&str, &[&str])] = &[
    ("demo", &["config", "profile", "no_agent"]),
    ("completions", &["config", "profile", "output", "no_agent"]),
    ("man", &["config", "profile", "output", "no_agent"]),
    ("sandbox", &["config", "profile", "no_agent"]),
    ("secrets", &["config", "profile", "no_agent"]),
    ("access", &["config", "profile", "no_agent"]),
    ("profiles", &["profile", "no_agent"]),
    ("agent", &["no_agent"]),
    ("init", &["no_agent"]),
];

/// The clap `Command`, for parsing, completions, man pages and tests.
pub fn command() -> clap::Command {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    // A subcommand that already holds an argument of a global's id is skipped when clap
    // propagates globals at build time: give it a hidden copy, which parses the same (global
    // too, so nested subcommands get it) and whose value still reaches `Globals`. Hiding the
    // propagated one after the build would change what clap parses.
    for (name, ids) in IGNORED_GLOBALS {
        let hidden: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| ids.contains(&a.get_id().as_str()))
            .map(|a| a.clone().hide(true))
            .collect();
        cmd = cmd.mut_subcommand(*name, |sub| sub.args(hidden));
    }
    cmd
}

/// `sandbox --fault`'s parser: the sandbox's own names (`Fault::from_str`), every one offered
/// to help and completion.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultParser;

impl clap::builder::TypedValueParser for FaultParser {
    type Value = crate::sandbox::Fault;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let text = value.to_str().ok_or_else(|| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidUtf8,
                "a fault name is ASCII\n",
            )
            .with_cmd(cmd)
        })?;
        text.parse().map_err(|e: crate::sandbox::FaultError| {
            let name = arg.map_or("--fault".to_string(), |a| a.to_string());
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("invalid value '{text}' for '{name}': {e}\n"),
            )
            .with_cmd(cmd)
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(crate::sandbox::Fault::names().map(
            |(name, help)| clap::builder::PossibleValue::new(name).help(help),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn clap_definitions_are_consistent() {
        command().debug_assert();
    }

    fn parse(words: &[&str]) -> Result<Cli, clap::Error> {
        parse_from(words.iter().map(std::ffi::OsString::from))
    }

    #[test]
    fn kubectl_and_helm_arguments_pass_through_untouched_leading_flags_included() {
        for words in [
            &["-n", "paragon", "get", "pods", "--help", ""][..],
            &["-v", "6", "get", "ns"],
            &["--output", "json", "get", "ns"],
            &["--version"],
            &["-q", "get", "ns"],
            &["--profile", "x", "--config", "y", "-p", "z"],
            &["--", "-x"],
        ] {
            for tool in ["kubectl", "helm"] {
                let mut line = vec!["paragon-admin", "-v", "--profile", "prod", tool];
                line.extend_from_slice(words);
                let cli = parse(&line).unwrap();
                let (Command::Kubectl(a) | Command::Helm(a)) = cli.command else {
                    panic!("not {tool}")
                };
                assert_eq!(a.args, words, "{line:?}");
                assert_eq!(cli.globals.profile.as_deref(), Some("prod"));
                assert_eq!(cli.globals.verbose, 1);
            }
        }
    }

    #[test]
    fn options_before_other_subcommands_and_after_them_still_parse() {
        let cli = parse(&["paragon-admin", "--output", "json", "profiles"]).unwrap();
        assert_eq!(cli.globals.output, Format::Json);
        let cli = parse(&["paragon-admin", "profiles", "--output", "json"]).unwrap();
        assert_eq!(cli.globals.output, Format::Json);
        // A value that happens to be `kubectl` is a value, not the subcommand.
        let cli = parse(&["paragon-admin", "--profile", "kubectl", "profiles"]).unwrap();
        assert_eq!(cli.globals.profile.as_deref(), Some("kubectl"));
        assert!(parse(&["paragon-admin", "--bogus", "kubectl"]).is_err());
    }

    #[test]
    fn hidden_globals_still_reach_globals_wherever_they_are_typed() {
        for line in [
            &["paragon-admin", "man", "--profile", "x", "--config", "c"][..],
            &[
                "paragon-admin",
                "secrets",
                "list",
                "-p",
                "x",
                "--config",
                "c",
            ],
            &[
                "paragon-admin",
                "--profile",
                "x",
                "--config",
                "c",
                "sandbox",
            ],
        ] {
            let cli = parse(line).unwrap();
            assert_eq!(cli.globals.profile.as_deref(), Some("x"), "{line:?}");
            assert_eq!(cli.globals.config, Some(PathBuf::from("c")), "{line:?}");
        }
        let mut cmd = command();
        cmd.build();
        let man = cmd.find_subcommand("man").unwrap();
        let profile = man.get_arguments().find(|a| a.get_id() == "profile");
        assert!(profile.is_some_and(|a| a.is_hide_set()));
    }

    #[test]
    fn forward_help_names_every_built_in_service_from_its_table() {
        let mut cmd = command();
        cmd.build();
        let about = cmd
            .find_subcommand("forward")
            .and_then(|f| f.get_long_about())
            .map(ToString::to_string)
            .unwrap_or_default();
        for s in crate::config::builtin_services() {
            assert!(about.contains(&s.name), "{} missing from: {about}", s.name);
        }
        assert!(about.contains(&format!("({}, or one", crate::config::builtin_names())));
    }

    #[test]
    fn forward_needs_a_spec_or_socks() {
        assert!(Cli::try_parse_from(["paragon-admin", "forward"]).is_err());
        let cli = Cli::try_parse_from(["paragon-admin", "forward", "--socks", "0"]).unwrap();
        let Command::Forward(a) = cli.command else {
            panic!("not forward")
        };
        assert_eq!((a.socks, a.specs.len()), (Some(0), 0));
        assert_eq!(a.bind.to_string(), "127.0.0.1");
        assert!(
            Cli::try_parse_from(["paragon-admin", "forward", "grafana", "--bind", "nohost"])
                .is_err()
        );
    }

    #[test]
    fn ssh_command_after_double_dash() {
        let cli = Cli::try_parse_from(["paragon-admin", "ssh", "--", "ls", "-l"]).unwrap();
        let Command::Ssh(a) = cli.command else {
            panic!("not ssh")
        };
        assert_eq!(a.command, ["ls", "-l"]);
    }

    #[test]
    fn every_fault_is_offered_to_help_and_parses_back() {
        use clap::builder::TypedValueParser as _;
        let offered: Vec<String> = FaultParser
            .possible_values()
            .into_iter()
            .flatten()
            .map(|v| v.get_name().to_string())
            .collect();
        for f in crate::sandbox::Fault::ALL {
            assert!(offered.iter().any(|o| o == f.name()), "{}", f.name());
        }
        // every fault, and api-forbidden (which takes a resource)
        assert_eq!(offered.len(), crate::sandbox::Fault::ALL.len() + 1);
        let parsed = Cli::try_parse_from(["paragon-admin", "sandbox", "--fault", "crashloop"]);
        assert!(parsed.is_ok(), "{parsed:?}");
        let refused = Cli::try_parse_from(["paragon-admin", "sandbox", "--fault", "nope"])
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(refused.contains("unknown fault \"nope\""), "{refused}");
    }
}
