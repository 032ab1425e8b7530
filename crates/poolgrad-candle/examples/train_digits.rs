//! Trains a small CNN on the UCI handwritten digits (8x8, 1,797 images) with poolgrad's
//! pooling in candle:
//!
//!     conv 3x3 (16) → relu → max pool 3x3 stride 2 padding 1 → conv 3x3 (32) → relu
//!     → avg pool 2x2 → linear (10)
//!
//! `cargo run --release --example train_digits -p poolgrad-candle` trains it and reports
//! the loss per epoch and the test accuracy. Every random source is seeded (`--seed N`,
//! default 1: the weight initialisation; the split is fixed), so the same command prints
//! the same numbers on every run. With `--candle-pooling` the same network uses
//! candle's own `max_pool2d_with_stride`/`avg_pool2d`, whose backward refuses a 3x3
//! window with stride 2: it cannot train.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{conv2d, linear, AdamW, Conv2d, Conv2dConfig, Linear, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use poolgrad_candle::Pool;

struct Net {
    conv1: Conv2d,
    conv2: Conv2d,
    fc: Linear,
    candle_pooling: bool,
}

impl Net {
    fn new(vb: VarBuilder, candle_pooling: bool) -> Result<Self> {
        let same = Conv2dConfig { padding: 1, ..Default::default() };
        Ok(Net {
            conv1: conv2d(1, 16, 3, same, vb.pp("conv1"))?,
            conv2: conv2d(16, 32, 3, same, vb.pp("conv2"))?,
            fc: linear(32 * 2 * 2, 10, vb.pp("fc"))?,
            candle_pooling,
        })
    }
}

impl Module for Net {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.conv1.forward(x)?.relu()?;
        let h = if self.candle_pooling {
            // candle has no padding argument: pad by hand, then pool 3x3 with stride 2.
            h.pad_with_same(2, 1, 1)?.pad_with_same(3, 1, 1)?.max_pool2d_with_stride(3, 2)?
        } else {
            Pool::max(&[3]).stride(&[2]).padding(&[1]).forward(&h)?
        };
        let h = self.conv2.forward(&h)?.relu()?;
        let h = if self.candle_pooling { h.avg_pool2d(2)? } else { Pool::avg(&[2]).forward(&h)? };
        self.fc.forward(&h.flatten_from(1)?)
    }
}

/// A seeded generator (SplitMix64) for the weight initialisation: candle's CPU random
/// source cannot be seeded.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (1.0 - self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Re-initialises every variable from `seed` with candle-nn's own distributions: weights
/// Kaiming-normal for ReLU (std `sqrt(2 / fan_in)`), biases uniform in `±1/sqrt(fan_in)`.
fn seed_weights(varmap: &VarMap, seed: u64) -> Result<()> {
    let vars = varmap.data().lock().map_err(|_| candle_core::Error::Msg("variable map poisoned".into()))?;
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    let mut rng = Rng(seed);
    for name in names {
        let var = &vars[name];
        let layer = name.rsplit_once('.').map_or(name.as_str(), |(layer, _)| layer);
        let weight = &vars[&format!("{layer}.weight")];
        let fan_in = weight.dims()[1..].iter().product::<usize>() as f64;
        let values: Vec<f32> = (0..var.elem_count())
            .map(|_| {
                if name.ends_with(".weight") {
                    (rng.normal() * (2.0 / fan_in).sqrt()) as f32
                } else {
                    ((rng.uniform() * 2.0 - 1.0) / fan_in.sqrt()) as f32
                }
            })
            .collect();
        var.set(&Tensor::from_vec(values, var.dims(), var.device())?)?;
    }
    Ok(())
}

/// Images (N, 1, 8, 8) scaled to [0, 1] and labels (N).
fn load(dev: &Device) -> Result<(Tensor, Tensor)> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/digits.csv");
    let text =
        std::fs::read_to_string(&path).map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| candle_core::Error::Msg(format!("digits.csv line {}: {e}", n + 1)))?;
        if fields.len() != 65 {
            return Err(candle_core::Error::Msg(format!(
                "digits.csv line {}: {} fields, expected 65",
                n + 1,
                fields.len()
            )));
        }
        pixels.extend(fields[..64].iter().map(|v| v / 16.0));
        labels.push(fields[64] as u32);
    }
    let n = labels.len();
    Ok((Tensor::from_vec(pixels, (n, 1, 8, 8), dev)?, Tensor::from_vec(labels, n, dev)?))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let candle_pooling = args.iter().any(|a| a == "--candle-pooling");
    let seed = match args.iter().position(|a| a == "--seed") {
        Some(i) => args
            .get(i + 1)
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(|| candle_core::Error::Msg("--seed needs a non-negative integer".into()))?,
        None => 1,
    };
    let dev = Device::Cpu;
    let (images, labels) = load(&dev)?;
    let n = labels.dims1()?;
    // A fixed shuffle, then 80 % for training and 20 % for testing.
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut s = 12345u64;
    for i in (1..n).rev() {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, (s >> 33) as usize % (i + 1));
    }
    let n_train = n * 4 / 5;
    let pick = |ids: &[u32]| -> Result<(Tensor, Tensor)> {
        let ids = Tensor::from_slice(ids, ids.len(), &dev)?;
        Ok((images.index_select(&ids, 0)?, labels.index_select(&ids, 0)?))
    };
    let (train_x, train_y) = pick(&order[..n_train])?;
    let (test_x, test_y) = pick(&order[n_train..])?;
    println!(
        "UCI digits: {n_train} training and {} test images (8x8), pooling: {}, seed {seed}",
        n - n_train,
        if candle_pooling { "candle's own" } else { "poolgrad" }
    );

    let varmap = VarMap::new();
    let net = Net::new(VarBuilder::from_varmap(&varmap, DType::F32, &dev), candle_pooling)?;
    seed_weights(&varmap, seed)?;
    let mut opt = AdamW::new(varmap.all_vars(), ParamsAdamW { lr: 3e-3, weight_decay: 1e-4, ..Default::default() })?;
    let batch = 32;
    let start = std::time::Instant::now();
    for epoch in 1..=25 {
        let mut total = 0.0;
        let mut batches = 0;
        for b in (0..n_train).step_by(batch) {
            let len = batch.min(n_train - b);
            let (x, y) = (train_x.narrow(0, b, len)?, train_y.narrow(0, b, len)?);
            let loss = candle_nn::loss::cross_entropy(&net.forward(&x)?, &y)?;
            if let Err(e) = opt.backward_step(&loss) {
                let first = e.to_string().lines().next().unwrap_or_default().to_string();
                println!("epoch {epoch}: the backward failed: {first}");
                println!(
                    "candle's own pooling cannot train this network (its max-pool backward needs stride = kernel)."
                );
                std::process::exit(1);
            }
            total += loss.to_scalar::<f32>()?;
            batches += 1;
        }
        let accuracy = net
            .forward(&test_x)?
            .argmax(D::Minus1)?
            .eq(&test_y)?
            .to_dtype(DType::F32)?
            .mean_all()?
            .to_scalar::<f32>()?;
        println!("epoch {epoch:2}: train loss {:.4}, test accuracy {:.2} %", total / batches as f32, 100.0 * accuracy);
    }
    let accuracy =
        net.forward(&test_x)?.argmax(D::Minus1)?.eq(&test_y)?.to_dtype(DType::F32)?.mean_all()?.to_scalar::<f32>()?;
    println!("test accuracy {:.2} % after {:.1} s", 100.0 * accuracy, start.elapsed().as_secs_f64());
    Ok(())
}
