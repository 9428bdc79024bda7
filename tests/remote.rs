//! Scale-out over Burn's remote backend: two local servers (loopback), each one
//! context-parallel rank, compute the single-process loss and gradients. Tensors cross
//! between the servers with `to_device`, as they would between machines.

mod common;

use burn::backend::remote::RemoteDevice;
use burn::backend::{Autodiff, Flex, RemoteBackend};
use burn::module::Param;
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use comet::comet::{CometModel, ContextParallel};
use comet::layout::Sequence;
use comet::weights::random_llm;
use common::{autodiff_lock, tiny_comet, tiny_config, tokens};

/// A port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// The loss of a two-sample batch read by one rank per device, and the gradients of three
/// parameters (token embeddings, a memory gate, a query projection), flattened.
fn loss_and_grads<B: AutodiffBackend>(devices: &[B::Device]) -> (f32, Vec<Vec<f32>>) {
    let llm = random_llm::<B>(&tiny_config(false), 3, &devices[0]);
    let model = CometModel::new(llm, tiny_comet());
    let batch = [
        Sequence::language_model(tokens(70, 1, 0, 64)),
        Sequence::language_model(tokens(55, 2, 0, 64)),
    ];
    let parallel = ContextParallel::new(&model, devices, |m| m.clone()).unwrap();
    let loss = parallel.loss(&batch, &model.layout_builder()).unwrap();
    let value: f32 = loss.clone().into_scalar().elem();
    let grads = parallel.gradients(loss.backward(), &model);
    let grad = |p: &Param<Tensor<B, 2>>| -> Vec<f32> {
        let g = grads.get::<B::InnerBackend, 2>(p.id).expect("a gradient");
        g.into_data().convert::<f32>().to_vec().unwrap()
    };
    let params = [
        &model.llm.embed_tokens.weight,
        &model.memory[0].global.gate.weight,
        &model.llm.layers[1].self_attn.q_proj.weight,
    ];
    (value, params.map(grad).to_vec())
}

/// Two `comet serve`-like servers on local ports, alive until the process ends (stopping
/// them while clients still hold connections only makes noise).
fn two_local_servers() -> Vec<RemoteDevice> {
    let runtime = Box::leak(Box::new(
        tokio::runtime::Builder::new_multi_thread()
            .enable_io()
            .build()
            .expect("a tokio runtime"),
    ));
    let ports = [free_port(), free_port()];
    for port in ports {
        runtime.spawn(burn::server::start_websocket_async::<Flex>(
            Default::default(),
            port,
        ));
    }
    // Clients do not retry a refused connection: wait until both listen.
    for port in ports {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "server on {port} never listened"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    ports
        .iter()
        .map(|p| RemoteDevice::new(&format!("ws://localhost:{p}")))
        .collect()
}

#[test]
fn context_parallel_over_two_remote_servers_equals_one_process() {
    let _serial = autodiff_lock();
    let remote = two_local_servers();
    let start = std::time::Instant::now();
    let (expected, expected_grads) = loss_and_grads::<Autodiff<Flex>>(&[Default::default()]);
    let local = start.elapsed().as_secs_f64();
    let start = std::time::Instant::now();
    let (value, grads) = loss_and_grads::<Autodiff<RemoteBackend>>(&remote);
    eprintln!(
        "one process: {local:.2} s; two remote ranks: {:.2} s",
        start.elapsed().as_secs_f64()
    );
    assert!((value - expected).abs() < 1e-5, "{value} vs {expected}");
    for (got, want) in grads.iter().zip(&expected_grads) {
        let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
        let diff = common::max_abs_diff(got, want);
        assert!(
            scale > 0.0 && diff < 1e-4 * scale,
            "gradient differs by {diff} of {scale}"
        );
    }
}
