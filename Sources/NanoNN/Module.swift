import NanoEngine

/// A layer or model. Parameters are found by reflection over stored properties: any Tensor
/// made with `parameter(_:)`, any nested Module, and arrays or optionals of them. Nothing is
/// registered by hand. A frozen parameter (`requiresGrad` false) is still a parameter: it is
/// saved and loaded, but gets no gradient and no optimizer update.
public protocol Module: AnyObject {}

extension Module {
    /// Parameters with dotted names in declaration order, e.g. "blocks.0.attention.qkv.weight".
    public func namedParameters() -> [(name: String, tensor: Tensor)] {
        var out: [(String, Tensor)] = []
        var seen = Set<ObjectIdentifier>()
        collect(self, prefix: "", into: &out, seen: &seen)
        return out
    }

    /// Parameters in declaration order (each tensor once, even when shared, e.g. tied weights).
    public func parameters() -> [Tensor] { namedParameters().map(\.tensor) }

    /// Total number of parameter elements.
    public var parameterCount: Int { parameters().reduce(0) { $0 + $1.count } }

    /// The parameters that get gradients (not frozen).
    public func trainableParameters() -> [(name: String, tensor: Tensor)] {
        namedParameters().filter { $0.tensor.requiresGrad }
    }

    /// Freezes (or unfreezes) every parameter of this module.
    public func setTrainable(_ trainable: Bool) {
        for p in parameters() { p.requiresGrad = trainable; if !trainable { p.grad = nil } }
    }

    /// This module and every nested module with dotted names ("" for self), in declaration order.
    public func namedModules() -> [(name: String, module: any Module)] {
        var out: [(String, any Module)] = [("", self)]
        var seen = Set<ObjectIdentifier>([ObjectIdentifier(self)])
        collectModules(self, prefix: "", into: &out, seen: &seen)
        return out
    }

    /// Clears every parameter's gradient.
    public func zeroGrad() { for p in parameters() { p.zeroGrad() } }
}

private func collect(_ value: Any, prefix: String, into out: inout [(String, Tensor)], seen: inout Set<ObjectIdentifier>) {
    if let t = value as? Tensor {
        if t.isParameter && seen.insert(ObjectIdentifier(t)).inserted { out.append((prefix, t)) }
        return
    }
    let mirror = Mirror(reflecting: value)
    switch mirror.displayStyle {
    case .optional:
        if let child = mirror.children.first { collect(child.value, prefix: prefix, into: &out, seen: &seen) }
    case .collection:
        for (i, child) in mirror.children.enumerated() {
            collect(child.value, prefix: join(prefix, String(i)), into: &out, seen: &seen)
        }
    case .class, .struct, .enum:
        guard value is Module || mirror.displayStyle != .class else { return }
        for child in mirror.children {
            collect(child.value, prefix: join(prefix, child.label ?? "_"), into: &out, seen: &seen)
        }
        // Stored properties of superclasses.
        var superMirror = mirror.superclassMirror
        while let m = superMirror {
            for child in m.children { collect(child.value, prefix: join(prefix, child.label ?? "_"), into: &out, seen: &seen) }
            superMirror = m.superclassMirror
        }
    default:
        return
    }
}

private func collectModules(_ value: Any, prefix: String, into out: inout [(String, any Module)], seen: inout Set<ObjectIdentifier>) {
    let mirror = Mirror(reflecting: value)
    func visit(_ child: Any, _ name: String) {
        if let m = child as? any Module {
            guard seen.insert(ObjectIdentifier(m)).inserted else { return }
            out.append((name, m))
            collectModules(m, prefix: name, into: &out, seen: &seen)
        } else if !(child is Tensor) {
            let inner = Mirror(reflecting: child)
            switch inner.displayStyle {
            case .optional: if let c = inner.children.first { visit(c.value, name) }
            case .collection: for (i, c) in inner.children.enumerated() { visit(c.value, join(name, String(i))) }
            default: return
            }
        }
    }
    var m: Mirror? = mirror
    while let current = m {
        for child in current.children { visit(child.value, join(prefix, child.label ?? "_")) }
        m = current.superclassMirror
    }
}

private func join(_ prefix: String, _ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }
