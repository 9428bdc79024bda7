//! Maps cargo features to one concrete backend, so no backend name appears in model code.
//!
//! Priority when several features are on: `cuda`, then `wgpu`, then `flex`, then `ndarray`:
//! that is the *compute* backend. With `remote` the model runs on Burn's remote backend
//! instead (each device a `comet serve` process, addressed `ws://host:port`), and the
//! compute backend is what `comet serve` computes with.

#[cfg(feature = "cuda")]
// A remote build picks devices by address, not index.
#[cfg_attr(feature = "remote", allow(dead_code))]
mod selected {
    /// The compute backend chosen by cargo features.
    pub type Compute = burn::backend::Cuda<f32, i32>;
    /// Short name of the selected backend, for logs and reports.
    pub const NAME: &str = "cuda";
    /// The `index`-th GPU.
    pub fn device_at(index: usize) -> burn::tensor::Device<Compute> {
        burn::backend::cuda::CudaDevice::new(index)
    }
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
// A remote build picks devices by address, not index.
#[cfg_attr(feature = "remote", allow(dead_code))]
mod selected {
    /// The compute backend chosen by cargo features.
    pub type Compute = burn::backend::Wgpu<f32, i32>;
    /// Short name of the selected backend, for logs and reports.
    pub const NAME: &str = "wgpu";
    /// The `index`-th discrete GPU.
    pub fn device_at(index: usize) -> burn::tensor::Device<Compute> {
        burn::backend::wgpu::WgpuDevice::DiscreteGpu(index)
    }
}

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
// A remote build picks devices by address, not index.
#[cfg_attr(feature = "remote", allow(dead_code))]
mod selected {
    /// The compute backend chosen by cargo features.
    pub type Compute = burn::backend::Flex<f32, i32>;
    /// Short name of the selected backend, for logs and reports.
    pub const NAME: &str = "flex";
    /// The CPU, whatever the index: several indices make virtual ranks on it.
    pub fn device_at(_index: usize) -> burn::tensor::Device<Compute> {
        Default::default()
    }
}

#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu", feature = "flex"))
))]
// A remote build picks devices by address, not index.
#[cfg_attr(feature = "remote", allow(dead_code))]
mod selected {
    /// The compute backend chosen by cargo features.
    pub type Compute = burn::backend::NdArray<f32, i32>;
    /// Short name of the selected backend, for logs and reports.
    pub const NAME: &str = "ndarray";
    /// The CPU, whatever the index: several indices make virtual ranks on it.
    pub fn device_at(_index: usize) -> burn::tensor::Device<Compute> {
        Default::default()
    }
}

#[cfg(not(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
)))]
compile_error!("enable one backend feature: flex (default), ndarray, wgpu or cuda");

pub use selected::{Compute, NAME as COMPUTE_NAME};

/// The backend the model runs on: the compute backend itself, or with the `remote` feature
/// Burn's remote backend driving `comet serve` processes.
#[cfg(not(feature = "remote"))]
pub type Backend = Compute;
/// The backend the model runs on: the compute backend itself, or with the `remote` feature
/// Burn's remote backend driving `comet serve` processes.
#[cfg(feature = "remote")]
pub type Backend = burn::backend::RemoteBackend;

/// Short name of the backend the model runs on, for logs and reports.
#[cfg(not(feature = "remote"))]
pub const NAME: &str = selected::NAME;
/// Short name of the backend the model runs on, for logs and reports.
#[cfg(feature = "remote")]
pub const NAME: &str = "remote";

/// Devices from a `--devices` list, one context-parallel rank each: GPU indices on GPU
/// backends; on the CPU every index is the one CPU device (virtual ranks); with `remote`,
/// server addresses (`ws://host:3000`).
pub fn devices(list: &[String]) -> crate::Result<Vec<Device>> {
    // The driver check once, not per rank (on wgpu it runs an operation).
    #[cfg(not(feature = "remote"))]
    device()?;
    list.iter().map(|item| device_named(item.trim())).collect()
}

#[cfg(not(feature = "remote"))]
fn device_named(item: &str) -> crate::Result<Device> {
    let index = item.parse::<usize>().map_err(|_| {
        crate::Error::Input(format!(
            "--devices: `{item}` is not a device index (server addresses need a build with the `remote` feature)"
        ))
    })?;
    Ok(selected::device_at(index))
}

#[cfg(feature = "remote")]
fn device_named(item: &str) -> crate::Result<Device> {
    if !(item.starts_with("ws://") || item.starts_with("wss://")) {
        return Err(crate::Error::Input(format!(
            "--devices: `{item}` is not a server address (ws://host:port, a `comet serve`)"
        )));
    }
    Ok(burn::backend::remote::RemoteDevice::new(item))
}

/// Serves the compute backend's default device to remote clients on `port` (all
/// interfaces) until the process ends: `comet serve`, one per GPU or machine.
#[cfg(feature = "server")]
pub fn serve(port: u16) -> crate::Result<()> {
    let device = burn::tensor::Device::<Compute>::default();
    probe::<Compute>(&device).map_err(|reason| {
        crate::Error::Input(format!("{} cannot compute here: {reason}", selected::NAME))
    })?;
    burn::server::start_websocket::<Compute>(device, port);
    Ok(())
}

/// The device type of the selected backend.
pub type Device = burn::tensor::Device<Backend>;

/// The default device of the selected backend (first GPU, or the CPU; with `remote`, the
/// server at `BURN_REMOTE_ADDRESS`, else ws://localhost:3000).
///
/// On `cuda` this checks that a CUDA driver can be loaded, so a machine without one gets
/// an error instead of a panic deep inside the runtime.
pub fn device() -> crate::Result<Device> {
    #[cfg(all(feature = "cuda", not(feature = "remote")))]
    {
        let found = ["libcuda.so.1", "libcuda.so", "nvcuda.dll"]
            .iter()
            .any(|lib| unsafe { libloading_probe(lib) });
        if !found {
            return Err(crate::Error::Input(
                "the cuda backend needs an NVIDIA driver (libcuda), and none was found on this machine; \
                 rebuild with the default CPU backend or `--features wgpu`"
                    .into(),
            ));
        }
    }
    let device = Device::default();
    #[cfg(all(feature = "wgpu", not(feature = "cuda"), not(feature = "remote")))]
    probe::<Backend>(&device).map_err(|reason| {
        crate::Error::Input(format!(
            "the wgpu backend found no usable GPU driver (Vulkan, Metal or DX12): {reason}; \
             install one (e.g. mesa-vulkan-drivers) or rebuild with the default CPU backend"
        ))
    })?;
    Ok(device)
}

/// Whether `device` can run a tensor operation, as an error message when it cannot.
///
/// GPU runtimes panic deep inside their set-up when no driver or adapter exists; this turns
/// that into an answer (and keeps the panic's backtrace off the terminal).
pub fn probe<B: burn::tensor::backend::Backend>(device: &B::Device) -> Result<(), String> {
    use burn::tensor::Tensor;
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Tensor::<B, 1>::zeros([1], device).into_data();
    }));
    std::panic::set_hook(hook);
    result.map_err(|payload| {
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("the runtime panicked");
        text.lines().next().unwrap_or_default().to_string()
    })
}

#[cfg(all(feature = "cuda", not(feature = "remote"), not(unix)))]
unsafe fn libloading_probe(_name: &str) -> bool {
    // The runtime reports a missing driver itself on other platforms.
    true
}

#[cfg(all(feature = "cuda", not(feature = "remote"), unix))]
unsafe fn libloading_probe(name: &str) -> bool {
    use std::ffi::CString;
    extern "C" {
        fn dlopen(filename: *const std::os::raw::c_char, flag: i32) -> *mut std::ffi::c_void;
    }
    let Ok(c) = CString::new(name) else {
        return false;
    };
    // RTLD_LAZY = 1: only probing whether the library exists.
    !dlopen(c.as_ptr(), 1).is_null()
}
