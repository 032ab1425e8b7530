//! Trains a small CNN on the UCI handwritten digits (8x8, 1,797 images) with poolgrad's
//! pooling in burn, the same network as poolgrad-candle's example:
//!
//!     conv 3x3 (16) → relu → max pool 3x3 stride 2 padding 1 → conv 3x3 (32) → relu
//!     → avg pool 2x2 → linear (10)
//!
//! `cargo run --release --example train_digits_burn -p poolgrad-burn` trains it on burn-flex
//! with autodiff and burn's Adam, and reports the loss per epoch and the test accuracy.
//! Every random source is seeded (`--seed N`, default 1: the device's generator, which
//! burn's initialisers draw from; the split is fixed), so the same command prints the
//! same numbers on every run. `--burn-pooling` trains the same network with burn-nn's
//! own `MaxPool2d`/`AvgPool2d` instead, for comparison.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{AvgPool2dConfig as BurnAvgPool2dConfig, MaxPool2dConfig as BurnMaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData};
use poolgrad_burn::modules::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig, PoolPadding};
use poolgrad_burn::PoolError;

#[derive(Module, Debug)]
struct Net {
    conv1: Conv2d,
    conv2: Conv2d,
    fc: Linear,
    max_pool: MaxPool2d,
    avg_pool: AvgPool2d,
    burn_max_pool: burn::nn::pool::MaxPool2d,
    burn_avg_pool: burn::nn::pool::AvgPool2d,
    burn_pooling: bool,
}

impl Net {
    fn new(device: &Device, burn_pooling: bool) -> Self {
        let same = PaddingConfig2d::Explicit(1, 1, 1, 1);
        Net {
            conv1: Conv2dConfig::new([1, 16], [3, 3]).with_padding(same.clone()).init(device),
            conv2: Conv2dConfig::new([16, 32], [3, 3]).with_padding(same).init(device),
            fc: LinearConfig::new(32 * 2 * 2, 10).init(device),
            max_pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PoolPadding::Explicit([1, 1]))
                .init(),
            avg_pool: AvgPool2dConfig::new([2, 2]).init(),
            burn_max_pool: BurnMaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            burn_avg_pool: BurnAvgPool2dConfig::new([2, 2]).init(),
            burn_pooling,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Result<Tensor<2>, PoolError> {
        let h = relu(self.conv1.forward(x));
        let h = if self.burn_pooling { self.burn_max_pool.forward(h) } else { self.max_pool.forward(h)? };
        let h = relu(self.conv2.forward(h));
        let h = if self.burn_pooling { self.burn_avg_pool.forward(h) } else { self.avg_pool.forward(h)? };
        Ok(self.fc.forward(h.flatten(1, 3)))
    }
}

/// Images (N, 1, 8, 8) scaled to [0, 1] and labels (N), from poolgrad-candle's copy of
/// the data set.
fn load(device: &Device) -> Result<(Tensor<4>, Tensor<1, Int>), String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../poolgrad-candle/data/digits.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("digits.csv line {}: {e}", n + 1))?;
        if fields.len() != 65 {
            return Err(format!("digits.csv line {}: {} fields, expected 65", n + 1, fields.len()));
        }
        pixels.extend(fields[..64].iter().map(|v| v / 16.0));
        labels.push(fields[64] as i64);
    }
    let n = labels.len();
    Ok((
        Tensor::from_data(TensorData::new(pixels, [n, 1, 8, 8]), device),
        Tensor::from_data(TensorData::new(labels, [n]), device),
    ))
}

fn accuracy(net: &Net, x: Tensor<4>, y: Tensor<1, Int>) -> Result<f64, PoolError> {
    let n = y.dims()[0];
    let predicted = net.forward(x)?.argmax(1).flatten::<1>(0, 1);
    let correct = predicted.equal(y).int().sum().into_scalar::<i64>();
    Ok(100.0 * correct as f64 / n as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let burn_pooling = args.iter().any(|a| a == "--burn-pooling");
    let seed = match args.iter().position(|a| a == "--seed") {
        Some(i) => args.get(i + 1).and_then(|s| s.parse::<u64>().ok()).ok_or("--seed needs a non-negative integer")?,
        None => 1,
    };
    let device = Device::flex().autodiff();
    device.seed(seed);
    let (images, labels) = load(&device)?;
    let n = labels.dims()[0];
    // A fixed shuffle, then 80 % for training and 20 % for testing.
    let mut order: Vec<i64> = (0..n as i64).collect();
    let mut s = 12345u64;
    for i in (1..n).rev() {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        order.swap(i, (s >> 33) as usize % (i + 1));
    }
    let n_train = n * 4 / 5;
    let pick = |ids: &[i64]| {
        let ids = Tensor::<1, Int>::from_data(TensorData::new(ids.to_vec(), [ids.len()]), &device);
        (images.clone().select(0, ids.clone()), labels.clone().select(0, ids))
    };
    let (train_x, train_y) = pick(&order[..n_train]);
    let (test_x, test_y) = pick(&order[n_train..]);
    println!(
        "UCI digits: {n_train} training and {} test images (8x8), pooling: {}, seed {seed}",
        n - n_train,
        if burn_pooling { "burn-nn's own" } else { "poolgrad" }
    );

    let mut net = Net::new(&device, burn_pooling);
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let batch = 32;
    let start = std::time::Instant::now();
    for epoch in 1..=25 {
        let mut total = 0.0;
        let mut batches = 0;
        for b in (0..n_train).step_by(batch) {
            let len = batch.min(n_train - b);
            let (x, y) = (train_x.clone().narrow(0, b, len), train_y.clone().narrow(0, b, len));
            let loss = loss_fn.forward(net.forward(x)?, y);
            total += loss.clone().into_scalar::<f32>() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optimizer.step(3e-3, net, grads);
            batches += 1;
        }
        let test = accuracy(&net, test_x.clone(), test_y.clone())?;
        println!("epoch {epoch:2}: train loss {:.4}, test accuracy {test:.2} %", total / batches as f64);
    }
    let test = accuracy(&net, test_x, test_y)?;
    println!("test accuracy {test:.2} % after {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
