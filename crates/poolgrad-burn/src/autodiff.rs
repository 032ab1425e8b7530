//! [`PoolBackend`] for burn's `Autodiff<B>`: every operation records a backward step whose
//! work is another poolgrad operation of the inner backend.
//!
//! | operation | its backward (inner backend) |
//! |---|---|
//! | pooling forward | max: scatter-add at the saved indices; average, LP: `poolgrad_backward` |
//! | max / fractional max with indices | scatter-add at the indices |
//! | `poolgrad_backward(x, g)` | `g`: `poolgrad_double_backward`; `x`: `poolgrad_hessian_product` |
//! | `poolgrad_double_backward(x, v)` | `v`: `poolgrad_backward`; `x`: `poolgrad_hessian_product` |
//! | unpooling, gather | scatter-add |
//! | scatter-add | gather |
//!
//! So the backward functions of [`crate::functional`] are themselves differentiable once:
//! a loss built from a gradient (a gradient penalty, say) gets exact second derivatives
//! through burn's first-order autodiff. `poolgrad_hessian_product` records no backward
//! step (third derivatives are not provided).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::Autodiff;
use poolgrad::Layout;

use crate::backend::{dims_of, FractionalSpec, IndexSpec, PoolBackend, PoolSpec};

/// The spatial dims of a tensor's dims in a layout.
fn spatial(dims: &[usize], layout: Layout) -> Vec<usize> {
    match layout {
        Layout::ChannelsFirst => dims[2..].to_vec(),
        Layout::ChannelsLast => dims[1..dims.len() - 1].to_vec(),
    }
}

impl<B: PoolBackend, C: CheckpointStrategy> PoolBackend for Autodiff<B, C> {
    fn poolgrad_forward(x: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self> {
        if crate::backend::as_max(&spec).is_some() {
            return Self::poolgrad_max_with_indices(x, spec).0;
        }
        match PoolStep.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let x_id = prep.checkpoint(&x);
                let y = B::poolgrad_forward(x.into_primitive(), spec.clone());
                prep.finish((x_id, spec), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::poolgrad_forward(x.into_primitive(), spec)),
        }
    }

    fn poolgrad_backward(x: FloatTensor<Self>, grad_output: FloatTensor<Self>, spec: PoolSpec) -> FloatTensor<Self> {
        match BackwardStep.prepare::<C>([x.node(), grad_output.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let (x_id, g_id) = (prep.checkpoint(&x), prep.checkpoint(&grad_output));
                let gx = B::poolgrad_backward(x.into_primitive(), grad_output.into_primitive(), spec.clone());
                prep.finish((x_id, g_id, spec), gx)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::poolgrad_backward(x.into_primitive(), grad_output.into_primitive(), spec))
            }
        }
    }

    fn poolgrad_double_backward(
        x: FloatTensor<Self>,
        grad_grad_input: FloatTensor<Self>,
        spec: PoolSpec,
    ) -> FloatTensor<Self> {
        match DoubleBackwardStep.prepare::<C>([x.node(), grad_grad_input.node()]).compute_bound().stateful() {
            OpsKind::Tracked(mut prep) => {
                let (x_id, v_id) = (prep.checkpoint(&x), prep.checkpoint(&grad_grad_input));
                let jv =
                    B::poolgrad_double_backward(x.into_primitive(), grad_grad_input.into_primitive(), spec.clone());
                prep.finish((x_id, v_id, spec), jv)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::poolgrad_double_backward(x.into_primitive(), grad_grad_input.into_primitive(), spec))
            }
        }
    }

    fn poolgrad_hessian_product(
        x: FloatTensor<Self>,
        grad_output: FloatTensor<Self>,
        grad_grad_input: FloatTensor<Self>,
        spec: PoolSpec,
    ) -> FloatTensor<Self> {
        let product = B::poolgrad_hessian_product(
            x.into_primitive(),
            grad_output.into_primitive(),
            grad_grad_input.into_primitive(),
            spec,
        );
        FloatTensor::<Self>::new(product)
    }

    fn poolgrad_max_with_indices(x: FloatTensor<Self>, spec: PoolSpec) -> (FloatTensor<Self>, IntTensor<Self>) {
        let target =
            IndexSpec { wide_spatial: spatial(&dims_of::<B>(x.primitive()), spec.layout), layout: spec.layout };
        match ScatterBack.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, indices) = B::poolgrad_max_with_indices(x.into_primitive(), spec);
                (prep.finish((indices.clone(), target), y), indices)
            }
            OpsKind::UnTracked(prep) => {
                let (y, indices) = B::poolgrad_max_with_indices(x.into_primitive(), spec);
                (prep.finish(y), indices)
            }
        }
    }

    fn poolgrad_fractional_max(
        x: FloatTensor<Self>,
        samples: FloatTensor<Self>,
        spec: FractionalSpec,
    ) -> (FloatTensor<Self>, IntTensor<Self>) {
        let target =
            IndexSpec { wide_spatial: spatial(&dims_of::<B>(x.primitive()), spec.layout), layout: spec.layout };
        // The samples choose the windows; nothing flows back to them (as in PyTorch).
        let samples = samples.into_primitive();
        match ScatterBack.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (y, indices) = B::poolgrad_fractional_max(x.into_primitive(), samples, spec);
                (prep.finish((indices.clone(), target), y), indices)
            }
            OpsKind::UnTracked(prep) => {
                let (y, indices) = B::poolgrad_fractional_max(x.into_primitive(), samples, spec);
                (prep.finish(y), indices)
            }
        }
    }

    fn poolgrad_unpool(x: FloatTensor<Self>, indices: IntTensor<Self>, spec: IndexSpec) -> FloatTensor<Self> {
        match GatherBack.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let layout = spec.layout;
                prep.finish((indices.clone(), layout), B::poolgrad_unpool(x.into_primitive(), indices, spec))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::poolgrad_unpool(x.into_primitive(), indices, spec)),
        }
    }

    fn poolgrad_scatter_add(values: FloatTensor<Self>, indices: IntTensor<Self>, spec: IndexSpec) -> FloatTensor<Self> {
        match GatherBack.prepare::<C>([values.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let layout = spec.layout;
                prep.finish((indices.clone(), layout), B::poolgrad_scatter_add(values.into_primitive(), indices, spec))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::poolgrad_scatter_add(values.into_primitive(), indices, spec)),
        }
    }

    fn poolgrad_gather(wide: FloatTensor<Self>, indices: IntTensor<Self>, layout: Layout) -> FloatTensor<Self> {
        let target = IndexSpec { wide_spatial: spatial(&dims_of::<B>(wide.primitive()), layout), layout };
        match ScatterBack.prepare::<C>([wide.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                prep.finish((indices.clone(), target), B::poolgrad_gather(wide.into_primitive(), indices, layout))
            }
            OpsKind::UnTracked(prep) => prep.finish(B::poolgrad_gather(wide.into_primitive(), indices, layout)),
        }
    }
}

/// Backward of average and LP pooling: `poolgrad_backward` of the saved input.
#[derive(Debug)]
struct PoolStep;

impl<B: PoolBackend> Backward<B, 1> for PoolStep {
    type State = (NodeId, PoolSpec);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [x_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_id, spec) = ops.state;
        if let Some(node) = x_node {
            let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_id);
            grads.register::<B>(node.id, B::poolgrad_backward(x, grad, spec));
        }
    }
}

/// Backward of `poolgrad_backward(x, g)`, linear in `g`: `J·u` for `g`, `H·u` for `x`.
#[derive(Debug)]
struct BackwardStep;

impl<B: PoolBackend> Backward<B, 2> for BackwardStep {
    type State = (NodeId, NodeId, PoolSpec);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [x_node, g_node] = ops.parents;
        let u = grads.consume::<B>(&ops.node);
        let (x_id, g_id, spec) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_id);
        if let Some(node) = x_node {
            let g = checkpointer.retrieve_node_output::<FloatTensor<B>>(g_id);
            grads.register::<B>(node.id, B::poolgrad_hessian_product(x.clone(), g, u.clone(), spec.clone()));
        }
        if let Some(node) = g_node {
            grads.register::<B>(node.id, B::poolgrad_double_backward(x, u, spec));
        }
    }
}

/// Backward of `poolgrad_double_backward(x, v) = J(x)·v`: `Jᵀ·w` for `v`; for `x`, the
/// gradient of `wᵀ·J(x)·v`, which is `H(w)·v`.
#[derive(Debug)]
struct DoubleBackwardStep;

impl<B: PoolBackend> Backward<B, 2> for DoubleBackwardStep {
    type State = (NodeId, NodeId, PoolSpec);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [x_node, v_node] = ops.parents;
        let w = grads.consume::<B>(&ops.node);
        let (x_id, v_id, spec) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_id);
        if let Some(node) = x_node {
            let v = checkpointer.retrieve_node_output::<FloatTensor<B>>(v_id);
            grads.register::<B>(node.id, B::poolgrad_hessian_product(x.clone(), w.clone(), v, spec.clone()));
        }
        if let Some(node) = v_node {
            grads.register::<B>(node.id, B::poolgrad_backward(x, w, spec));
        }
    }
}

/// Backward of an operation that picks cells by index (max and fractional max pooling,
/// gather): the gradient is scattered back, adding up where indices repeat.
#[derive(Debug)]
struct ScatterBack;

impl<B: PoolBackend> Backward<B, 1> for ScatterBack {
    type State = (IntTensor<B>, IndexSpec);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (indices, target) = ops.state;
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::poolgrad_scatter_add(grad, indices, target));
        }
    }
}

/// Backward of an operation that places values by index (unpooling, scatter-add): the
/// gradient is gathered at the indices.
#[derive(Debug)]
struct GatherBack;

impl<B: PoolBackend> Backward<B, 1> for GatherBack {
    type State = (IntTensor<B>, Layout);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [parent] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (indices, layout) = ops.state;
        if let Some(node) = parent {
            grads.register::<B>(node.id, B::poolgrad_gather(grad, indices, layout));
        }
    }
}
