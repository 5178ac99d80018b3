import NanoEngine

/// A layer or model. Parameters are found by reflection over stored properties: any Tensor
/// with `requiresGrad`, any nested Module, and arrays or optionals of them. Nothing is
/// registered by hand.
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

    /// Clears every parameter's gradient.
    public func zeroGrad() { for p in parameters() { p.zeroGrad() } }
}

private func collect(_ value: Any, prefix: String, into out: inout [(String, Tensor)], seen: inout Set<ObjectIdentifier>) {
    if let t = value as? Tensor {
        if t.requiresGrad && seen.insert(ObjectIdentifier(t)).inserted { out.append((prefix, t)) }
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

private func join(_ prefix: String, _ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }
