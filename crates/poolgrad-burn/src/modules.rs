//! Pooling layers in burn's style: a config with documented defaults, `init()`, then
//! `forward(x)`, named as burn-nn's (`MaxPool2dConfig`, `AvgPool1d`, ...) and generic over
//! the number of spatial dims `N` (`MaxPoolConfig<3>` is 3-D max pooling; any `N` works).
//!
//! Each config translates into the library's one operator description
//! ([`poolgrad::Operator`], [`FractionalMaxPool`], [`MaxUnpool`]) and the layer calls
//! [`crate::functional`]. `forward` returns a `Result`: a shape the layer cannot pool is
//! an error naming the problem, never a panic.
//!
//! ```
//! use burn::tensor::{Device, Tensor};
//! use poolgrad_burn::modules::{AvgPool2dConfig, PoolPadding};
//!
//! let x = Tensor::<4>::ones([1, 1, 4, 4], &Device::flex());
//! // count_include_pad = false holds with asymmetric padding too (burn-nn 0.22 counts the zeros).
//! let pool = AvgPool2dConfig::new([2, 2])
//!     .with_padding(PoolPadding::Pads { begin: [1, 1], end: [0, 0] })
//!     .with_count_include_pad(false)
//!     .init();
//! let y = pool.forward(x)?;
//! assert_eq!(y.dims(), [1, 1, 2, 2]);
//! assert_eq!(y.into_data().to_vec::<f32>().unwrap(), vec![1.0; 4]);
//! # Ok::<(), poolgrad::PoolError>(())
//! ```

use burn::module::Module;
use burn::tensor::{Distribution, Int, Tensor};
use poolgrad::{FractionalMaxPool, Layout, LpFormula, MaxUnpool, Operator, Padding, PoolError, PoolGeometry, Result};

use crate::functional;

/// Padding of a pooling layer over `N` spatial dims.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PoolPadding<const N: usize> {
    /// No padding (the default, as burn-nn's `PaddingConfig2d::Valid`).
    #[default]
    Valid,
    /// The same padding at both ends of each dim (PyTorch's `padding`).
    Explicit([usize; N]),
    /// Begin and end padding per dim (ONNX's `pads`); `count_include_pad = false` skips
    /// these cells too.
    Pads {
        /// Before each dim's first element.
        begin: [usize; N],
        /// After each dim's last element.
        end: [usize; N],
    },
    /// Output `ceil(in / stride)`, the odd padding cell at the end (ONNX `SAME_UPPER`,
    /// burn-nn's `Same`).
    SameUpper,
    /// Output `ceil(in / stride)`, the odd padding cell at the beginning (ONNX `SAME_LOWER`).
    SameLower,
}

impl<const N: usize> PoolPadding<N> {
    fn to_padding(&self) -> Padding {
        match self {
            PoolPadding::Valid => Padding::None,
            PoolPadding::Explicit(p) => Padding::Symmetric(p.to_vec()),
            PoolPadding::Pads { begin, end } => Padding::Explicit { begin: begin.to_vec(), end: end.to_vec() },
            PoolPadding::SameUpper => Padding::SameUpper,
            PoolPadding::SameLower => Padding::SameLower,
        }
    }
}

/// The regular-window part shared by max, average and LP configs.
fn geometry<const N: usize>(
    kernel: [usize; N],
    strides: [usize; N],
    padding: &PoolPadding<N>,
    dilation: [usize; N],
    ceil_mode: bool,
) -> PoolGeometry {
    PoolGeometry::new(&kernel).stride(&strides).padding(padding.to_padding()).dilation(&dilation).ceil_mode(ceil_mode)
}

/// `with_*` setters for config fields, as burn's `#[derive(Config)]` writes them.
macro_rules! setters {
    ($($(#[$doc:meta])* $setter:ident: $field:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $setter(mut self, $field: $ty) -> Self {
                self.$field = $field;
                self
            }
        )*
    };
}

/// `D = N + 2`: a layer over `N` spatial dims takes `(N, C, d1, ..., dN)` tensors.
fn check_rank<const N: usize, const D: usize>() -> Result<()> {
    if D == N + 2 {
        Ok(())
    } else {
        Err(PoolError::InvalidShape {
            what: "input",
            reason: format!(
                "a {N}-D pooling layer takes tensors of {} dims (batch, channels, {N} spatial), got {D}",
                N + 2
            ),
        })
    }
}

/// A layer computing one operator of the library.
macro_rules! layer {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Module, Debug)]
        pub struct $name<const N: usize> {
            /// The operator.
            #[module(skip)]
            op: Operator,
            /// The layout of the tensors.
            #[module(skip)]
            layout: Layout,
        }

        impl<const N: usize> $name<N> {
            /// Applies the layer to a `(N, C, d1, ..., dk)` tensor (`(N, d1, ..., dk, C)`
            /// channels-last), `k = N`, `D = N + 2`.
            pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>> {
                check_rank::<N, D>()?;
                functional::pool(x, &self.op, self.layout)
            }

            /// The library's description of what the layer computes.
            pub fn operator(&self) -> &Operator {
                &self.op
            }
        }
    };
}

layer!(
    /// Max pooling over `N` spatial dims; built by [`MaxPoolConfig`].
    MaxPool
);
layer!(
    /// Average pooling over `N` spatial dims; built by [`AvgPoolConfig`].
    AvgPool
);
layer!(
    /// LP pooling over `N` spatial dims; built by [`LpPoolConfig`].
    LpPool
);
layer!(
    /// Adaptive max pooling over `N` spatial dims; built by [`AdaptiveMaxPoolConfig`].
    AdaptiveMaxPool
);
layer!(
    /// Adaptive average pooling over `N` spatial dims; built by [`AdaptiveAvgPoolConfig`].
    AdaptiveAvgPool
);

impl<const N: usize> MaxPool<N> {
    /// The forward pass with PyTorch's indices (for [`MaxUnpool::forward`]).
    pub fn forward_with_indices<const D: usize>(&self, x: Tensor<D>) -> Result<(Tensor<D>, Tensor<D, Int>)> {
        check_rank::<N, D>()?;
        functional::max_pool_with_indices(x, &self.op, self.layout)
    }
}

impl<const N: usize> AdaptiveMaxPool<N> {
    /// The forward pass with PyTorch's indices.
    pub fn forward_with_indices<const D: usize>(&self, x: Tensor<D>) -> Result<(Tensor<D>, Tensor<D, Int>)> {
        check_rank::<N, D>()?;
        functional::max_pool_with_indices(x, &self.op, self.layout)
    }
}

/// Configuration of [max pooling](MaxPool) (PyTorch's `MaxPool{1,2,3}d`, burn-nn's
/// `MaxPool{1,2}dConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct MaxPoolConfig<const N: usize> {
    /// The window size.
    pub kernel_size: [usize; N],
    /// The strides. Default: the kernel size.
    pub strides: [usize; N],
    /// The padding. Default: [`PoolPadding::Valid`]. Padding cells never win.
    pub padding: PoolPadding<N>,
    /// The dilation. Default: 1.
    pub dilation: [usize; N],
    /// Ceil instead of floor in the output size. Default: false.
    pub ceil_mode: bool,
    /// The tensors' layout. Default: channels-first.
    pub layout: Layout,
}

impl<const N: usize> MaxPoolConfig<N> {
    /// A config with this window size and the defaults.
    pub fn new(kernel_size: [usize; N]) -> Self {
        MaxPoolConfig {
            kernel_size,
            strides: kernel_size,
            padding: PoolPadding::Valid,
            dilation: [1; N],
            ceil_mode: false,
            layout: Layout::ChannelsFirst,
        }
    }

    setters!(
        /// Sets the strides.
        with_strides: strides: [usize; N],
        /// Sets the padding.
        with_padding: padding: PoolPadding<N>,
        /// Sets the dilation.
        with_dilation: dilation: [usize; N],
        /// Sets ceil mode.
        with_ceil_mode: ceil_mode: bool,
        /// Sets the layout.
        with_layout: layout: Layout,
    );

    /// The layer.
    pub fn init(&self) -> MaxPool<N> {
        let g = geometry(self.kernel_size, self.strides, &self.padding, self.dilation, self.ceil_mode);
        MaxPool { op: Operator::Max(poolgrad::MaxPool::new(g)), layout: self.layout }
    }
}

/// Configuration of [average pooling](AvgPool) (PyTorch's `AvgPool{1,2,3}d`, burn-nn's
/// `AvgPool{1,2}dConfig`), with dilation (ONNX) and `divisor_override` (PyTorch).
#[derive(Debug, Clone, PartialEq)]
pub struct AvgPoolConfig<const N: usize> {
    /// The window size.
    pub kernel_size: [usize; N],
    /// The strides. Default: the kernel size.
    pub strides: [usize; N],
    /// The padding. Default: [`PoolPadding::Valid`].
    pub padding: PoolPadding<N>,
    /// The dilation. Default: 1.
    pub dilation: [usize; N],
    /// Ceil instead of floor in the output size. Default: false.
    pub ceil_mode: bool,
    /// Whether padding cells count in the divisor. Default: true (PyTorch's and burn's).
    pub count_include_pad: bool,
    /// Divide every window's sum by this instead. Default: none.
    pub divisor_override: Option<usize>,
    /// The tensors' layout. Default: channels-first.
    pub layout: Layout,
}

impl<const N: usize> AvgPoolConfig<N> {
    /// A config with this window size and the defaults.
    pub fn new(kernel_size: [usize; N]) -> Self {
        AvgPoolConfig {
            kernel_size,
            strides: kernel_size,
            padding: PoolPadding::Valid,
            dilation: [1; N],
            ceil_mode: false,
            count_include_pad: true,
            divisor_override: None,
            layout: Layout::ChannelsFirst,
        }
    }

    setters!(
        /// Sets the strides.
        with_strides: strides: [usize; N],
        /// Sets the padding.
        with_padding: padding: PoolPadding<N>,
        /// Sets the dilation.
        with_dilation: dilation: [usize; N],
        /// Sets ceil mode.
        with_ceil_mode: ceil_mode: bool,
        /// Sets `count_include_pad`.
        with_count_include_pad: count_include_pad: bool,
        /// Sets `divisor_override`.
        with_divisor_override: divisor_override: Option<usize>,
        /// Sets the layout.
        with_layout: layout: Layout,
    );

    /// The layer.
    pub fn init(&self) -> AvgPool<N> {
        let g = geometry(self.kernel_size, self.strides, &self.padding, self.dilation, self.ceil_mode);
        let op =
            poolgrad::AvgPool::new(g).count_include_pad(self.count_include_pad).divisor_override(self.divisor_override);
        AvgPool { op: Operator::Avg(op), layout: self.layout }
    }
}

/// Configuration of [LP pooling](LpPool) (PyTorch's `LPPool{1,2,3}d`; ONNX's `LpPool`
/// where padding or dilation is set).
#[derive(Debug, Clone, PartialEq)]
pub struct LpPoolConfig<const N: usize> {
    /// The power `p` (PyTorch's `norm_type`).
    pub norm_type: f64,
    /// The window size.
    pub kernel_size: [usize; N],
    /// The strides. Default: the kernel size.
    pub strides: [usize; N],
    /// The padding (ONNX). Default: [`PoolPadding::Valid`].
    pub padding: PoolPadding<N>,
    /// The dilation (ONNX). Default: 1.
    pub dilation: [usize; N],
    /// Ceil instead of floor in the output size. Default: false.
    pub ceil_mode: bool,
    /// Which definition applies. Default: [`LpFormula::Auto`] (PyTorch's where PyTorch
    /// accepts the geometry, ONNX's otherwise).
    pub formula: LpFormula,
    /// The tensors' layout. Default: channels-first.
    pub layout: Layout,
}

impl<const N: usize> LpPoolConfig<N> {
    /// A config with this power and window size and the defaults.
    pub fn new(norm_type: f64, kernel_size: [usize; N]) -> Self {
        LpPoolConfig {
            norm_type,
            kernel_size,
            strides: kernel_size,
            padding: PoolPadding::Valid,
            dilation: [1; N],
            ceil_mode: false,
            formula: LpFormula::Auto,
            layout: Layout::ChannelsFirst,
        }
    }

    setters!(
        /// Sets the strides.
        with_strides: strides: [usize; N],
        /// Sets the padding.
        with_padding: padding: PoolPadding<N>,
        /// Sets the dilation.
        with_dilation: dilation: [usize; N],
        /// Sets ceil mode.
        with_ceil_mode: ceil_mode: bool,
        /// Sets the formula.
        with_formula: formula: LpFormula,
        /// Sets the layout.
        with_layout: layout: Layout,
    );

    /// The layer.
    pub fn init(&self) -> LpPool<N> {
        let g = geometry(self.kernel_size, self.strides, &self.padding, self.dilation, self.ceil_mode);
        LpPool { op: Operator::Lp(poolgrad::LpPool::new(g, self.norm_type).formula(self.formula)), layout: self.layout }
    }
}

/// Configuration of [adaptive max pooling](AdaptiveMaxPool) (PyTorch's
/// `AdaptiveMaxPool{1,2,3}d`; burn has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptiveMaxPoolConfig<const N: usize> {
    /// The output's spatial size.
    pub output_size: [usize; N],
    /// The tensors' layout. Default: channels-first.
    pub layout: Layout,
}

impl<const N: usize> AdaptiveMaxPoolConfig<N> {
    /// A config with this output size.
    pub fn new(output_size: [usize; N]) -> Self {
        AdaptiveMaxPoolConfig { output_size, layout: Layout::ChannelsFirst }
    }

    setters!(
        /// Sets the layout.
        with_layout: layout: Layout,
    );

    /// The layer.
    pub fn init(&self) -> AdaptiveMaxPool<N> {
        AdaptiveMaxPool { op: Operator::Max(poolgrad::MaxPool::adaptive(&self.output_size)), layout: self.layout }
    }
}

/// Configuration of [adaptive average pooling](AdaptiveAvgPool) (PyTorch's
/// `AdaptiveAvgPool{1,2,3}d`, burn-nn's `AdaptiveAvgPool{1,2,3}dConfig`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdaptiveAvgPoolConfig<const N: usize> {
    /// The output's spatial size.
    pub output_size: [usize; N],
    /// The tensors' layout. Default: channels-first.
    pub layout: Layout,
}

impl<const N: usize> AdaptiveAvgPoolConfig<N> {
    /// A config with this output size.
    pub fn new(output_size: [usize; N]) -> Self {
        AdaptiveAvgPoolConfig { output_size, layout: Layout::ChannelsFirst }
    }

    setters!(
        /// Sets the layout.
        with_layout: layout: Layout,
    );

    /// The layer.
    pub fn init(&self) -> AdaptiveAvgPool<N> {
        AdaptiveAvgPool { op: Operator::Avg(poolgrad::AvgPool::adaptive(&self.output_size)), layout: self.layout }
    }
}

/// Global max or average pooling over every spatial dim of a tensor of any rank (spatial
/// dims kept, with size 1, as PyTorch's `adaptive_*_pool(x, 1)`).
#[derive(Module, Debug)]
pub struct GlobalPool {
    /// The operator.
    #[module(skip)]
    op: Operator,
    /// The layout of the tensors.
    #[module(skip)]
    layout: Layout,
}

impl GlobalPool {
    /// Global max pooling.
    pub fn max(layout: Layout) -> Self {
        GlobalPool { op: Operator::Max(poolgrad::MaxPool::global()), layout }
    }

    /// Global average pooling.
    pub fn avg(layout: Layout) -> Self {
        GlobalPool { op: Operator::Avg(poolgrad::AvgPool::global()), layout }
    }

    /// Applies the layer to a tensor of `D >= 3` dims.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Result<Tensor<D>> {
        functional::pool(x, &self.op, self.layout)
    }
}

/// The output of fractional max pooling: a size, or a ratio of the input's size.
#[derive(Debug, Clone, PartialEq)]
pub enum FractionalOutput<const N: usize> {
    /// The output's spatial size.
    Size([usize; N]),
    /// The output's spatial size as a fraction of the input's (each in (0, 1), PyTorch's
    /// `output_ratio`: `int(input · ratio)`).
    Ratio([f64; N]),
}

/// Configuration of [fractional max pooling](FractionalMaxPoolLayer) (PyTorch's
/// `FractionalMaxPool{2,3}d`; `N` is 2 or 3).
#[derive(Debug, Clone, PartialEq)]
pub struct FractionalMaxPoolConfig<const N: usize> {
    /// The window size.
    pub kernel_size: [usize; N],
    /// The output's size.
    pub output: FractionalOutput<N>,
    /// The tensors' layout. Default: channels-first.
    pub layout: Layout,
}

impl<const N: usize> FractionalMaxPoolConfig<N> {
    /// A config with this window size and output.
    pub fn new(kernel_size: [usize; N], output: FractionalOutput<N>) -> Self {
        FractionalMaxPoolConfig { kernel_size, output, layout: Layout::ChannelsFirst }
    }

    setters!(
        /// Sets the layout.
        with_layout: layout: Layout,
    );

    /// The layer.
    pub fn init(&self) -> FractionalMaxPoolLayer<N> {
        FractionalMaxPoolLayer { config: self.clone() }
    }
}

/// Fractional max pooling; built by [`FractionalMaxPoolConfig`]. Each `forward` draws new
/// window offsets from the device's random generator (seed it with `Device::seed` for
/// reproducible runs), as PyTorch does; [`Self::forward_with_samples`] takes them.
#[derive(Module, Debug)]
pub struct FractionalMaxPoolLayer<const N: usize> {
    /// The configuration.
    #[module(skip)]
    config: FractionalMaxPoolConfig<N>,
}

impl<const N: usize> FractionalMaxPoolLayer<N> {
    fn operator<const D: usize>(&self, x: &Tensor<D>) -> Result<FractionalMaxPool> {
        check_rank::<N, D>()?;
        let dims = x.dims();
        let spatial = match self.config.layout {
            Layout::ChannelsFirst => &dims[2..],
            Layout::ChannelsLast => &dims[1..D - 1],
        };
        let output: Vec<usize> = match &self.config.output {
            FractionalOutput::Size(size) => size.to_vec(),
            FractionalOutput::Ratio(ratio) => {
                if let Some(bad) = ratio.iter().find(|r| !(**r > 0.0 && **r < 1.0)) {
                    return Err(PoolError::InvalidParameter {
                        name: "output_ratio",
                        reason: format!("{bad} is not in (0, 1)"),
                    });
                }
                spatial.iter().zip(ratio).map(|(&i, r)| (i as f64 * r) as usize).collect()
            }
        };
        Ok(FractionalMaxPool::new(&self.config.kernel_size, &output))
    }

    /// Applies the layer with fresh samples; returns the output and its indices.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Result<(Tensor<D>, Tensor<D, Int>)> {
        let pool = self.operator(&x)?;
        let dims = x.dims();
        let (batch, channels) = match self.config.layout {
            Layout::ChannelsFirst => (dims[0], dims[1]),
            Layout::ChannelsLast => (dims[0], dims[D - 1]),
        };
        let samples = Tensor::<3>::random([batch, channels, N], Distribution::Uniform(0.0, 1.0), &x.device());
        functional::fractional_max_pool(x, samples, &pool, self.config.layout)
    }

    /// Applies the layer with these samples (`(N, C, k)`, in [0, 1): PyTorch's
    /// `_random_samples`).
    pub fn forward_with_samples<const D: usize>(
        &self,
        x: Tensor<D>,
        samples: Tensor<3>,
    ) -> Result<(Tensor<D>, Tensor<D, Int>)> {
        let pool = self.operator(&x)?;
        functional::fractional_max_pool(x, samples, &pool, self.config.layout)
    }
}

/// Configuration of [max unpooling](MaxUnpoolLayer) (PyTorch's `MaxUnpool{1,2,3}d`): the
/// pooling's kernel, strides and padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxUnpoolConfig<const N: usize> {
    /// The pooling's window size.
    pub kernel_size: [usize; N],
    /// The pooling's strides. Default: the kernel size.
    pub strides: [usize; N],
    /// The pooling's symmetric padding. Default: 0.
    pub padding: [usize; N],
    /// The tensors' layout. Default: channels-first.
    pub layout: Layout,
}

impl<const N: usize> MaxUnpoolConfig<N> {
    /// A config with this window size and the defaults.
    pub fn new(kernel_size: [usize; N]) -> Self {
        MaxUnpoolConfig { kernel_size, strides: kernel_size, padding: [0; N], layout: Layout::ChannelsFirst }
    }

    setters!(
        /// Sets the strides.
        with_strides: strides: [usize; N],
        /// Sets the padding.
        with_padding: padding: [usize; N],
        /// Sets the layout.
        with_layout: layout: Layout,
    );

    /// The layer.
    pub fn init(&self) -> MaxUnpoolLayer<N> {
        let unpool = poolgrad::MaxUnpool::new(&self.kernel_size).stride(&self.strides).padding(&self.padding);
        MaxUnpoolLayer { unpool, layout: self.layout }
    }
}

/// Max unpooling; built by [`MaxUnpoolConfig`].
#[derive(Module, Debug)]
pub struct MaxUnpoolLayer<const N: usize> {
    /// The operator.
    #[module(skip)]
    unpool: MaxUnpool,
    /// The layout of the tensors.
    #[module(skip)]
    layout: Layout,
}

impl<const N: usize> MaxUnpoolLayer<N> {
    /// Places each value of `x` at its index in a zero output of the default size
    /// (`(in − 1)·stride − 2·padding + kernel`) or of `output_size`.
    pub fn forward<const D: usize>(
        &self,
        x: Tensor<D>,
        indices: Tensor<D, Int>,
        output_size: Option<[usize; N]>,
    ) -> Result<Tensor<D>> {
        check_rank::<N, D>()?;
        functional::max_unpool(x, indices, &self.unpool, output_size.as_ref().map(|s| s.as_slice()), self.layout)
    }
}

/// 1-D max pooling config (burn-nn's name).
pub type MaxPool1dConfig = MaxPoolConfig<1>;
/// 2-D max pooling config (burn-nn's name).
pub type MaxPool2dConfig = MaxPoolConfig<2>;
/// 3-D max pooling config (burn has no 3-D max pooling: burn #4831).
pub type MaxPool3dConfig = MaxPoolConfig<3>;
/// 1-D max pooling.
pub type MaxPool1d = MaxPool<1>;
/// 2-D max pooling.
pub type MaxPool2d = MaxPool<2>;
/// 3-D max pooling.
pub type MaxPool3d = MaxPool<3>;
/// 1-D average pooling config (burn-nn's name).
pub type AvgPool1dConfig = AvgPoolConfig<1>;
/// 2-D average pooling config (burn-nn's name).
pub type AvgPool2dConfig = AvgPoolConfig<2>;
/// 3-D average pooling config (burn has no 3-D average pooling: burn #4830).
pub type AvgPool3dConfig = AvgPoolConfig<3>;
/// 1-D average pooling.
pub type AvgPool1d = AvgPool<1>;
/// 2-D average pooling.
pub type AvgPool2d = AvgPool<2>;
/// 3-D average pooling.
pub type AvgPool3d = AvgPool<3>;
/// 1-D LP pooling config.
pub type LpPool1dConfig = LpPoolConfig<1>;
/// 2-D LP pooling config.
pub type LpPool2dConfig = LpPoolConfig<2>;
/// 3-D LP pooling config.
pub type LpPool3dConfig = LpPoolConfig<3>;
/// 1-D adaptive average pooling config (burn-nn's name).
pub type AdaptiveAvgPool1dConfig = AdaptiveAvgPoolConfig<1>;
/// 2-D adaptive average pooling config (burn-nn's name).
pub type AdaptiveAvgPool2dConfig = AdaptiveAvgPoolConfig<2>;
/// 3-D adaptive average pooling config (burn-nn's name).
pub type AdaptiveAvgPool3dConfig = AdaptiveAvgPoolConfig<3>;
/// 1-D adaptive max pooling config.
pub type AdaptiveMaxPool1dConfig = AdaptiveMaxPoolConfig<1>;
/// 2-D adaptive max pooling config.
pub type AdaptiveMaxPool2dConfig = AdaptiveMaxPoolConfig<2>;
/// 3-D adaptive max pooling config.
pub type AdaptiveMaxPool3dConfig = AdaptiveMaxPoolConfig<3>;
/// 2-D fractional max pooling config.
pub type FractionalMaxPool2dConfig = FractionalMaxPoolConfig<2>;
/// 3-D fractional max pooling config.
pub type FractionalMaxPool3dConfig = FractionalMaxPoolConfig<3>;
/// 1-D max unpooling config.
pub type MaxUnpool1dConfig = MaxUnpoolConfig<1>;
/// 2-D max unpooling config.
pub type MaxUnpool2dConfig = MaxUnpoolConfig<2>;
/// 3-D max unpooling config.
pub type MaxUnpool3dConfig = MaxUnpoolConfig<3>;
