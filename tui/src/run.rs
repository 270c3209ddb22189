//! The command line and the three ways to run: the interactive terminal loop, `--once` (one
//! frame as plain text) and `diagram` (Mermaid or SVG of the live topology). `--demo` feeds
//! the sample shop of [`crate::fixtures`] instead of a cluster.

use std::{io::Write as _, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use jiff::Timestamp;
use kube::config::{KubeConfigOptions, Kubeconfig};
use ratatui::crossterm::event::{self, Event};
use tokio::sync::mpsc;

use crate::{
    diagram, fixtures, keys,
    sources::{self, SourceConfig},
    state::{Action, App, Scope, Settings, Update},
    topology, ui,
};

/// Live topology, throughput and failure points of the Storefronts in a cluster.
#[derive(Parser, Debug)]
#[command(name = "storefront-console", version, about)]
pub struct Cli {
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, short = 'n', env = "STOREFRONT_NAMESPACE", global = true)]
    pub namespace: Option<String>,
    /// Show only this Storefront.
    #[arg(long, short = 's', global = true)]
    pub storefront: Option<String>,
    /// Prometheus base URL, e.g. http://localhost:9090 or https://prometheus.example:9090.
    /// Without it, no metrics.
    #[arg(long, env = "STOREFRONT_PROMETHEUS_URL", global = true)]
    pub prometheus_url: Option<String>,
    /// PEM file of CA certificates to trust for an HTTPS Prometheus behind a private CA (the
    /// system's roots are trusted too).
    #[arg(long, env = "STOREFRONT_PROMETHEUS_CA", global = true)]
    pub prometheus_ca: Option<std::path::PathBuf>,
    /// Seconds between Prometheus polls.
    #[arg(long, default_value_t = 5)]
    pub prometheus_interval: u64,
    /// Kubeconfig context (default: the current context).
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Print one frame as plain text and exit.
    #[arg(long)]
    pub once: bool,
    /// Frame width for --once.
    #[arg(long, default_value_t = 80)]
    pub width: u16,
    /// Frame height for --once.
    #[arg(long, default_value_t = 24)]
    pub height: u16,
    /// Seconds --once and diagram wait for the first data.
    #[arg(long, default_value_t = 10, global = true)]
    pub wait: u64,
    /// The view --once prints: topology, services, shards, sales, failures, events.
    #[arg(long, default_value = "topology")]
    pub view: String,
    /// Use the built-in sample shop instead of a cluster (docs, measurements).
    #[arg(long)]
    pub demo: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Write the live topology as a diagram.
    Diagram {
        #[arg(long, value_enum, default_value_t = Format::Mermaid)]
        format: Format,
        /// Output file (default: stdout).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Format {
    Mermaid,
    Svg,
}

async fn kube_client(context: Option<&str>) -> anyhow::Result<kube::Client> {
    let config = match context {
        Some(c) => {
            let opts = KubeConfigOptions {
                context: Some(c.to_string()),
                ..KubeConfigOptions::default()
            };
            kube::Config::from_kubeconfig(&opts)
                .await
                .with_context(|| format!("failed to load kubeconfig context {c}"))?
        }
        None => kube::Config::infer()
            .await
            .context("failed to find a kubeconfig or in-cluster config")?,
    };
    kube::Client::try_from(config).context("failed to create a Kubernetes client")
}

/// Runs the console as the command line says.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let context = cli
        .context
        .clone()
        .or_else(|| Kubeconfig::read().ok().and_then(|k| k.current_context));
    let scope = Scope {
        namespace: cli.namespace.clone(),
        storefront: cli.storefront.clone(),
    };
    let (tx, mut rx) = mpsc::channel::<Update>(1024);
    let mut app = if cli.demo {
        let mut app = fixtures::degraded();
        app.scope = scope;
        app.settings.context = Some("demo".into());
        app.refresh();
        app
    } else {
        if let Some(ca) = &cli.prometheus_ca {
            // A wrong file is the user's to fix now, not a banner later.
            sources::prometheus::load_ca(ca)
                .map_err(|e| anyhow::anyhow!("--prometheus-ca: {e}"))?;
        }
        let client = kube_client(cli.context.as_deref()).await?;
        let cfg = SourceConfig {
            namespace: cli.namespace.clone(),
            prometheus_url: cli.prometheus_url.clone(),
            prometheus_ca: cli.prometheus_ca.clone(),
            prometheus_interval: Duration::from_secs(cli.prometheus_interval.max(1)),
        };
        // The tasks stop when the receiver is dropped.
        drop(sources::spawn(client, &cfg, tx));
        let settings = Settings {
            context,
            prometheus_url: cli.prometheus_url.clone(),
        };
        App::new(Timestamp::now(), settings, scope)
    };
    let once = cli.once || cli.command.is_some();
    if once && !cli.demo {
        wait_for_data(&mut app, &mut rx, Duration::from_secs(cli.wait)).await;
    }
    match cli.command {
        Some(Command::Diagram { format, output }) => {
            if let (false, Some(e)) = (app.api.synced, app.api.error()) {
                anyhow::bail!("failed to reach the API server: {e}");
            }
            let sf = app
                .focus()
                .context("failed to find a Storefront in scope (see --namespace, --storefront)")?;
            let topo = topology::build(sf, &app.cluster, &app.prom, &app.failures);
            let text = match format {
                Format::Mermaid => diagram::mermaid(&topo),
                Format::Svg => diagram::svg(&topo),
            };
            match output {
                Some(path) => std::fs::write(&path, text)
                    .with_context(|| format!("failed to write {}", path.display()))?,
                None => std::io::stdout()
                    .write_all(text.as_bytes())
                    .context("failed to write the diagram")?,
            }
            Ok(())
        }
        None if cli.once => {
            match crate::palette::parse(&cli.view) {
                Ok(crate::palette::Command::Action(a @ Action::Show(_))) => app.update(a),
                _ => anyhow::bail!(
                    "unknown view {} (topology, services, shards, sales, failures, events)",
                    cli.view
                ),
            }
            let buf = ui::render(&app, cli.width, cli.height);
            std::io::stdout()
                .write_all(ui::to_text(&buf).as_bytes())
                .context("failed to write the frame")?;
            // Scripts learn from the exit code that the frame holds no cluster data.
            if let (false, Some(e)) = (app.api.synced || cli.demo, app.api.error()) {
                anyhow::bail!("failed to reach the API server: {e}");
            }
            Ok(())
        }
        None => interactive(app, rx, cli.demo, FrameLog::from_env(started)?).await,
    }
}

/// Feeds updates until the API is synced and Prometheus answered once (or failed), or the
/// deadline passes.
async fn wait_for_data(app: &mut App, rx: &mut mpsc::Receiver<Update>, limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let prom_done = !app.prom.configured || app.prom.last.is_some() || app.prom.error.is_some();
        if app.api.synced && prom_done {
            break;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(u)) => {
                app.update(Action::Tick(Timestamp::now()));
                app.update(Action::Data(u));
            }
            Ok(None) | Err(_) => break,
        }
    }
    app.update(Action::Tick(Timestamp::now()));
}

/// A measurement hook, off unless `STOREFRONT_CONSOLE_FRAME_LOG` names a file: every drawn
/// frame appends `<ms since start> <µs to draw> <full>` to it, `full` being 1 once the watches
/// synced and Prometheus answered (or none is configured). tests/e2e/bench/console reads it for
/// the frame time p99 and the start-up to the first full frame.
pub struct FrameLog {
    out: std::io::BufWriter<std::fs::File>,
    started: std::time::Instant,
}

impl FrameLog {
    pub const ENV: &str = "STOREFRONT_CONSOLE_FRAME_LOG";

    fn from_env(started: std::time::Instant) -> anyhow::Result<Option<FrameLog>> {
        let Some(path) = std::env::var_os(Self::ENV) else {
            return Ok(None);
        };
        let file = std::fs::File::create(&path)
            .with_context(|| format!("failed to create {}", PathBuf::from(&path).display()))?;
        Ok(Some(FrameLog {
            out: std::io::BufWriter::new(file),
            started,
        }))
    }

    fn record(&mut self, took: Duration, app: &App) {
        let full = app.api.synced
            && (!app.prom.configured || app.prom.last.is_some() || app.prom.error.is_some());
        // A failed write loses a measurement, never the console.
        let _ = writeln!(
            self.out,
            "{} {} {}",
            self.started.elapsed().as_millis(),
            took.as_micros(),
            u8::from(full)
        )
        .and_then(|()| self.out.flush());
    }
}

/// Shortest time between two frames.
const FRAME: Duration = Duration::from_millis(50);

/// The terminal loop: redraws after updates, keys and once a second (ages and countdowns),
/// at most every [`FRAME`]. ratatui diffs frames, so only changed cells are written: no flicker.
async fn interactive(
    mut app: App,
    mut rx: mpsc::Receiver<Update>,
    demo: bool,
    mut frame_log: Option<FrameLog>,
) -> anyhow::Result<()> {
    let (ktx, mut krx) = mpsc::channel::<Event>(64);
    std::thread::spawn(move || {
        loop {
            match event::poll(Duration::from_millis(250)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if ktx.blocking_send(ev).is_err() {
                            break;
                        }
                    }
                    Err(_) => break,
                },
                Ok(false) if ktx.is_closed() => break,
                Ok(false) => {}
                Err(_) => break,
            }
        }
    });
    let mut terminal = ratatui::init();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    // At most one frame per FRAME: a storm of pod events costs one redraw per 50 ms.
    let mut dirty = true;
    let mut last_draw = tokio::time::Instant::now() - FRAME;
    let result = loop {
        if dirty && last_draw.elapsed() >= FRAME {
            let t = std::time::Instant::now();
            if let Err(e) = terminal.draw(|f| ui::draw(f, &app)) {
                break Err(anyhow::Error::new(e).context("failed to draw"));
            }
            if let Some(log) = &mut frame_log {
                log.record(t.elapsed(), &app);
            }
            dirty = false;
            last_draw = tokio::time::Instant::now();
        }
        tokio::select! {
            Some(u) = rx.recv() => {
                app.update(Action::Tick(Timestamp::now()));
                app.update(Action::Data(u));
                while let Ok(u) = rx.try_recv() {
                    app.update(Action::Data(u));
                }
                dirty = true;
            }
            Some(ev) = krx.recv() => {
                if let Event::Key(k) = ev
                    && let Some(a) = keys::action(k, &app.mode, &app.overlay)
                {
                    app.update(a);
                }
                dirty = true;
            }
            _ = tick.tick() => {
                if !demo {
                    app.update(Action::Tick(Timestamp::now()));
                }
                dirty = true;
            }
            _ = tokio::time::sleep_until(last_draw + FRAME), if dirty => {}
        }
        if app.quit {
            break Ok(());
        }
    };
    ratatui::restore();
    result
}
