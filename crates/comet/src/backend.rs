//! Maps cargo features to one concrete backend, so no backend name appears in model code.
//!
//! Priority when several features are on: `cuda`, then `wgpu`, then `flex`, then `ndarray`.

#[cfg(feature = "cuda")]
mod selected {
    /// The backend chosen by cargo features.
    pub type Backend = burn::backend::Cuda<f32, i32>;
    /// Short name of the selected backend, for logs and reports.
    pub const NAME: &str = "cuda";
    /// The `index`-th GPU.
    pub fn device_at(index: usize) -> super::Device {
        burn::backend::cuda::CudaDevice::new(index)
    }
}

#[cfg(all(feature = "wgpu", not(feature = "cuda")))]
mod selected {
    /// The backend chosen by cargo features.
    pub type Backend = burn::backend::Wgpu<f32, i32>;
    /// Short name of the selected backend, for logs and reports.
    pub const NAME: &str = "wgpu";
    /// The `index`-th discrete GPU.
    pub fn device_at(index: usize) -> super::Device {
        burn::backend::wgpu::WgpuDevice::DiscreteGpu(index)
    }
}

#[cfg(all(feature = "flex", not(any(feature = "cuda", feature = "wgpu"))))]
mod selected {
    /// The backend chosen by cargo features.
    pub type Backend = burn::backend::Flex<f32, i32>;
    /// Short name of the selected backend, for logs and reports.
    pub const NAME: &str = "flex";
    /// The CPU, whatever the index: several indices make virtual ranks on it.
    pub fn device_at(_index: usize) -> super::Device {
        super::Device::default()
    }
}

#[cfg(all(
    feature = "ndarray",
    not(any(feature = "cuda", feature = "wgpu", feature = "flex"))
))]
mod selected {
    /// The backend chosen by cargo features.
    pub type Backend = burn::backend::NdArray<f32, i32>;
    /// Short name of the selected backend, for logs and reports.
    pub const NAME: &str = "ndarray";
    /// The CPU, whatever the index: several indices make virtual ranks on it.
    pub fn device_at(_index: usize) -> super::Device {
        super::Device::default()
    }
}

#[cfg(not(any(
    feature = "cuda",
    feature = "wgpu",
    feature = "flex",
    feature = "ndarray"
)))]
compile_error!("enable one backend feature: flex (default), ndarray, wgpu or cuda");

pub use selected::{Backend, NAME};

/// Devices by index (`comet train --devices 0,1`): GPUs on GPU backends; on the CPU every
/// index is the one CPU device, so a list makes virtual context-parallel ranks.
pub fn devices(indices: &[usize]) -> crate::Result<Vec<Device>> {
    device()?;
    Ok(indices.iter().map(|&i| selected::device_at(i)).collect())
}

/// The device type of the selected backend.
pub type Device = burn::tensor::Device<Backend>;

/// The default device of the selected backend (first GPU, or the CPU).
///
/// On `cuda` this checks that a CUDA driver can be loaded, so a machine without one gets
/// an error instead of a panic deep inside the runtime.
pub fn device() -> crate::Result<Device> {
    #[cfg(feature = "cuda")]
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
    #[cfg(all(feature = "wgpu", not(feature = "cuda")))]
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

#[cfg(all(feature = "cuda", not(unix)))]
unsafe fn libloading_probe(_name: &str) -> bool {
    // The runtime reports a missing driver itself on other platforms.
    true
}

#[cfg(all(feature = "cuda", unix))]
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
