//! One autodiff graph for all trainable parameters, made before each forward pass.
//!
//! Burn 0.21 starts a graph for every parameter that requires a gradient and merges graphs
//! when an op first mixes them, keeping an arbitrary one of them as the survivor. A merged
//! graph's origin is not recorded among the survivor's keys (`GraphLocator::merge_two`), so
//! once the survivor is itself merged away, that parameter still points at an emptied graph,
//! and its next use merges again, which moves every node of the chunk's graph about half the
//! time. A forward through many chunks then spent about a third of each CPU training step
//! re-hashing graph nodes. Joining the parameters into one graph first, while every graph
//! holds a single node, leaves the forward nothing to merge: everything it records descends
//! from a parameter and lands in that one graph.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

/// First element of every parameter that requires a gradient.
struct FirstElements<B: Backend>(Vec<Tensor<B, 1>>);

impl<B: AutodiffBackend> ModuleVisitor<B> for FirstElements<B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        let value = param.val();
        if value.is_require_grad() {
            let n = value.shape().num_elements();
            self.0.push(value.reshape([n]).narrow(0, 0, 1));
        }
    }
}

/// Records one op over all of `model`'s trainable parameters, so that their graphs merge
/// into one while each is a single node. Call it before every forward pass whose backward
/// follows (the optimizer's new parameters start new graphs).
pub fn join_parameter_graphs<B: AutodiffBackend, M: Module<B>>(model: &M) {
    let mut first = FirstElements(Vec::new());
    model.visit(&mut first);
    if first.0.len() > 1 {
        // Dropped at once: only its registration in the graph matters.
        let _joined = Tensor::cat(first.0, 0);
    }
}
