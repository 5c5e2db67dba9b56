//! `ParamStore`: the named parameters (trainable `Var` leaves) and persistent buffers (values kept
//! and saved but not trained, e.g. spectral-norm `weight_u`) of a model, in registration order.
//!
//! Modules register through a `Scope` (`store.scope("generator").scope("up_3")`) and keep the
//! returned `Var`s; the store holds clones of the same `Var`s, so loading a checkpoint or an
//! optimiser step (`set_value`) is seen by the modules. Registration goes through `&self` (the
//! map sits in a `RefCell`) so that scopes can be copied around freely while a model is built.

use super::init::{init_tensor, param_seed, Init};
use crate::autograd::Var;
use crate::error::{Error, Result};
use crate::tensor::{Device, Tensor};
use std::cell::RefCell;
use std::collections::HashMap;

/// Whether an entry is trained (a gradient leaf) or a persistent buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Param,
    Buffer,
}

/// One entry of the store, as returned by `ParamStore::entries`.
#[derive(Clone)]
pub struct Named {
    pub name: String,
    pub var: Var,
    pub kind: Kind,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Named>,
    index: HashMap<String, usize>,
}

/// Ordered map name → parameter or buffer. Not `Send` (it holds `Var`s).
pub struct ParamStore {
    seed: u64,
    inner: RefCell<Inner>,
}

impl ParamStore {
    /// An empty store whose random inits derive from `seed`.
    pub fn new(seed: u64) -> Self {
        ParamStore {
            seed,
            inner: RefCell::new(Inner::default()),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The root scope (no prefix).
    pub fn root(&self) -> Scope<'_> {
        Scope {
            store: self,
            prefix: None,
        }
    }

    /// A scope whose names start with `name.`.
    pub fn scope(&self, name: &str) -> Scope<'_> {
        self.root().scope(name)
    }

    /// Registers (or returns the already registered) trainable parameter `name`.
    pub fn param(&self, name: &str, shape: &[usize], init: Init) -> Result<Var> {
        self.register(name, shape, init, Kind::Param)
    }

    /// Registers (or returns the already registered) persistent buffer `name`.
    pub fn buffer(&self, name: &str, shape: &[usize], init: Init) -> Result<Var> {
        self.register(name, shape, init, Kind::Buffer)
    }

    /// Get-or-create. Registering a name again returns the same `Var` (a shared module) when the
    /// kind and shape agree; the init is then ignored. Otherwise a typed error.
    fn register(&self, name: &str, shape: &[usize], init: Init, kind: Kind) -> Result<Var> {
        check_name(name)?;
        if let Some(e) = self.lookup(name) {
            if e.kind != kind {
                return Err(Error::Params(format!(
                    "`{name}` is already registered as a {:?}, requested as a {kind:?}",
                    e.kind
                )));
            }
            if e.var.dims() != shape {
                return Err(Error::Params(format!(
                    "`{name}` is already registered with shape {:?}, requested with shape {shape:?}",
                    e.var.dims()
                )));
            }
            return Ok(e.var);
        }
        if shape.contains(&0) {
            return Err(Error::Params(format!(
                "`{name}`: zero-sized shape {shape:?}"
            )));
        }
        let value = init_tensor(&init, shape, param_seed(self.seed, name))
            .map_err(|e| Error::Params(format!("`{name}`: {e}")))?;
        let var = match kind {
            Kind::Param => Var::param(value),
            Kind::Buffer => Var::constant(value),
        };
        let mut inner = self.inner.borrow_mut();
        let i = inner.entries.len();
        inner.entries.push(Named {
            name: name.to_string(),
            var: var.clone(),
            kind,
        });
        inner.index.insert(name.to_string(), i);
        Ok(var)
    }

    fn lookup(&self, name: &str) -> Option<Named> {
        let inner = self.inner.borrow();
        inner.index.get(name).map(|&i| inner.entries[i].clone())
    }

    /// The parameter or buffer `name`; a typed error naming it when missing.
    pub fn get(&self, name: &str) -> Result<Var> {
        self.lookup(name)
            .map(|e| e.var)
            .ok_or_else(|| Error::Params(format!("no parameter or buffer named `{name}`")))
    }

    /// Whether `name` is a parameter or a buffer; `None` when missing.
    pub fn kind(&self, name: &str) -> Option<Kind> {
        self.lookup(name).map(|e| e.kind)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.inner.borrow().index.contains_key(name)
    }

    /// Number of entries (parameters and buffers).
    pub fn len(&self) -> usize {
        self.inner.borrow().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// All entries in registration order.
    pub fn entries(&self) -> Vec<Named> {
        self.inner.borrow().entries.clone()
    }

    /// All names in registration order.
    pub fn names(&self) -> Vec<String> {
        self.inner
            .borrow()
            .entries
            .iter()
            .map(|e| e.name.clone())
            .collect()
    }

    fn of_kind(&self, kind: Kind) -> Vec<(String, Var)> {
        let inner = self.inner.borrow();
        inner
            .entries
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| (e.name.clone(), e.var.clone()))
            .collect()
    }

    /// The trainable parameters, in registration order.
    pub fn params(&self) -> Vec<(String, Var)> {
        self.of_kind(Kind::Param)
    }

    /// The persistent buffers, in registration order.
    pub fn buffers(&self) -> Vec<(String, Var)> {
        self.of_kind(Kind::Buffer)
    }

    /// Total number of trainable scalars.
    pub fn num_params(&self) -> usize {
        let inner = self.inner.borrow();
        inner
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Param)
            .map(|e| e.var.value().numel())
            .sum()
    }

    /// Total number of buffer scalars.
    pub fn num_buffer_elements(&self) -> usize {
        let inner = self.inner.borrow();
        inner
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Buffer)
            .map(|e| e.var.value().numel())
            .sum()
    }

    /// Clears the accumulated gradient of every parameter.
    pub fn zero_grad(&self) {
        for e in self
            .inner
            .borrow()
            .entries
            .iter()
            .filter(|e| e.kind == Kind::Param)
        {
            e.var.zero_grad();
        }
    }

    /// Replaces the value of `name` (same shape), e.g. when loading.
    pub fn set(&self, name: &str, value: Tensor) -> Result<()> {
        let var = self.get(name)?;
        if var.dims() != value.dims() {
            return Err(Error::Params(format!(
                "`{name}` has shape {:?}, new value has shape {:?}",
                var.dims(),
                value.dims()
            )));
        }
        // A value from another device (a host copy of a GPU store, a file) follows the entry's.
        let value = value.on_device(var.device())?;
        var.set_value(value)
    }

    /// Moves every parameter and buffer to `device` (optimisers built over them must then
    /// `follow_params`). A no-op for entries already there.
    pub fn to_device(&self, device: Device) -> Result<()> {
        for e in self.entries() {
            e.var
                .relocate(device)
                .map_err(|err| Error::Params(format!("`{}` to {device}: {err}", e.name)))?;
        }
        Ok(())
    }

    /// Where the entries are (the first one's device; the CPU for an empty store).
    pub fn device(&self) -> Device {
        self.inner
            .borrow()
            .entries
            .first()
            .map_or(Device::Cpu, |e| e.var.device())
    }
}

/// A name prefix into a store: `scope.param("weight", ..)` registers `<prefix>.weight`.
#[derive(Clone)]
pub struct Scope<'a> {
    store: &'a ParamStore,
    /// `None` at the root; `Some("")` (from an empty scope name) makes every name invalid.
    prefix: Option<String>,
}

impl<'a> Scope<'a> {
    /// A nested scope `<prefix>.<name>`. The name is checked when something is registered.
    pub fn scope(&self, name: &str) -> Scope<'a> {
        Scope {
            store: self.store,
            prefix: Some(self.name(name)),
        }
    }

    /// The full name of `local` in this scope.
    pub fn name(&self, local: &str) -> String {
        match &self.prefix {
            None => local.to_string(),
            Some(p) => format!("{p}.{local}"),
        }
    }

    /// The prefix ("" at the root).
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or("")
    }

    pub fn store(&self) -> &'a ParamStore {
        self.store
    }

    pub fn param(&self, local: &str, shape: &[usize], init: Init) -> Result<Var> {
        self.store.param(&self.name(local), shape, init)
    }

    pub fn buffer(&self, local: &str, shape: &[usize], init: Init) -> Result<Var> {
        self.store.buffer(&self.name(local), shape, init)
    }

    pub fn get(&self, local: &str) -> Result<Var> {
        self.store.get(&self.name(local))
    }
}

/// Names are dot-separated non-empty segments without whitespace; `__metadata__` is reserved by
/// safetensors.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let bad_segment = name.split('.').any(|s| s.is_empty());
    if name.is_empty() || bad_segment || name.chars().any(char::is_whitespace) {
        return Err(Error::Params(format!(
            "invalid name `{name}`: expected dot-separated non-empty segments without whitespace"
        )));
    }
    if name == "__metadata__" {
        return Err(Error::Params(
            "the name `__metadata__` is reserved by safetensors".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_prefix_names_and_keep_order() {
        let store = ParamStore::new(1);
        let up = store.scope("generator").scope("up_3");
        let conv = up.scope("conv_0");
        let w = conv
            .param("weight", &[4, 3, 3, 3], Init::XavierNormal { gain: 0.02 })
            .unwrap();
        conv.param("bias", &[4], Init::Zeros).unwrap();
        conv.buffer("weight_u", &[4], Init::UnitNormal).unwrap();
        store.param("d.gamma", &[], Init::Zeros).unwrap();
        assert_eq!(
            store.names(),
            [
                "generator.up_3.conv_0.weight",
                "generator.up_3.conv_0.bias",
                "generator.up_3.conv_0.weight_u",
                "d.gamma"
            ]
        );
        assert_eq!(store.num_params(), 4 * 27 + 4 + 1);
        assert_eq!(store.num_buffer_elements(), 4);
        assert_eq!(store.params().len(), 3);
        assert_eq!(store.buffers()[0].0, "generator.up_3.conv_0.weight_u");
        assert!(store
            .get("generator.up_3.conv_0.weight")
            .unwrap()
            .requires_grad());
        assert!(!store
            .get("generator.up_3.conv_0.weight_u")
            .unwrap()
            .requires_grad());
        assert_eq!(store.kind("d.gamma"), Some(Kind::Param));
        assert_eq!(w.dims(), &[4, 3, 3, 3]);
        assert_eq!(conv.get("bias").unwrap().dims(), &[4]);
    }

    #[test]
    fn reregistration_shares_or_fails() {
        let store = ParamStore::new(1);
        let a = store.param("p.alpha", &[1], Init::Constant(0.25)).unwrap();
        // Same shape: the same Var (a shared module), the second init is ignored.
        let b = store.param("p.alpha", &[1], Init::Constant(9.0)).unwrap();
        a.set_value(Tensor::full(0.5, [1])).unwrap();
        assert_eq!(b.value().item().unwrap(), 0.5);
        assert_eq!(store.len(), 1);
        let e = store.param("p.alpha", &[2], Init::Zeros).err().unwrap();
        assert!(matches!(&e, Error::Params(m) if m.contains("p.alpha") && m.contains("[2]")));
        let e = store.buffer("p.alpha", &[1], Init::Zeros).err().unwrap();
        assert!(matches!(&e, Error::Params(m) if m.contains("Buffer")));
    }

    #[test]
    fn bad_names_shapes_and_missing_entries_are_errors() {
        let store = ParamStore::new(0);
        for bad in ["", "a..b", ".a", "a.", "a b", "__metadata__"] {
            assert!(
                matches!(store.param(bad, &[1], Init::Zeros), Err(Error::Params(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            store.scope("").param("w", &[1], Init::Zeros),
            Err(Error::Params(_))
        ));
        assert!(matches!(
            store.param("z", &[3, 0], Init::Zeros),
            Err(Error::Params(_))
        ));
        // Xavier on a rank-1 shape fails with the name in the message.
        let e = store
            .param("g.w", &[3], Init::XavierNormal { gain: 1.0 })
            .err()
            .unwrap();
        assert!(matches!(&e, Error::Params(m) if m.contains("g.w")));
        let e = store.get("nope.weight").err().unwrap();
        assert!(matches!(&e, Error::Params(m) if m.contains("nope.weight")));
        assert!(store.is_empty());
        store.param("x", &[2], Init::Zeros).unwrap();
        assert!(matches!(
            store.set("x", Tensor::zeros([3])),
            Err(Error::Params(_))
        ));
        store.set("x", Tensor::ones([2])).unwrap();
        assert_eq!(
            store.get("x").unwrap().value().to_vec().unwrap(),
            vec![1.0, 1.0]
        );
    }

    #[test]
    fn init_depends_on_name_not_order() {
        let init = || Init::XavierNormal { gain: 1.0 };
        let s1 = ParamStore::new(42);
        s1.param("a.weight", &[3, 2, 3, 3], init()).unwrap();
        s1.param("b.weight", &[3, 2, 3, 3], init()).unwrap();
        let s2 = ParamStore::new(42);
        s2.param("b.weight", &[3, 2, 3, 3], init()).unwrap();
        s2.param("a.weight", &[3, 2, 3, 3], init()).unwrap();
        let val = |s: &ParamStore, n: &str| s.get(n).unwrap().value().to_vec().unwrap();
        assert_eq!(val(&s1, "a.weight"), val(&s2, "a.weight"));
        assert_eq!(val(&s1, "b.weight"), val(&s2, "b.weight"));
        assert_ne!(val(&s1, "a.weight"), val(&s1, "b.weight"));
        let s3 = ParamStore::new(43);
        s3.param("a.weight", &[3, 2, 3, 3], init()).unwrap();
        assert_ne!(val(&s1, "a.weight"), val(&s3, "a.weight"));
    }

    #[test]
    fn zero_grad_clears_parameter_gradients() {
        let store = ParamStore::new(0);
        let w = store.param("w", &[3], Init::Ones).unwrap();
        let loss = w.mul(&w).unwrap().sum_all().unwrap();
        loss.backward().unwrap();
        assert_eq!(w.grad().unwrap().to_vec().unwrap(), vec![2.0; 3]);
        store.zero_grad();
        assert!(w
            .grad()
            .is_none_or(|g| g.to_vec().unwrap().iter().all(|&x| x == 0.0)));
    }
}
