//! Port forwarding to a pod through the API server (what `kubectl port-forward` does), so a
//! test reaches a pod the same way on kind and on the local cluster: a loopback listener
//! whose every connection is a new forwarded stream.

use std::net::SocketAddr;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::net::TcpListener;

/// Forwards `127.0.0.1:<random>` to `port` of `pod` until the returned task is aborted.
pub async fn forward(
    pods: Api<Pod>,
    pod: &str,
    port: u16,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let pod = pod.to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut local, _)) = listener.accept().await else {
                return;
            };
            let (pods, pod) = (pods.clone(), pod.clone());
            tokio::spawn(async move {
                let forwarded = async {
                    let mut pf = pods
                        .portforward(&pod, &[port])
                        .await
                        .with_context(|| format!("failed to forward to {pod}:{port}"))?;
                    let mut remote = pf.take_stream(port).context("the forward has no stream")?;
                    tokio::io::copy_bidirectional(&mut local, &mut remote).await?;
                    drop(remote);
                    pf.join().await?;
                    anyhow::Ok(())
                };
                if let Err(e) = forwarded.await {
                    eprintln!("port-forward to {pod}:{port}: {e:#}");
                }
            });
        }
    });
    Ok((addr, task))
}
