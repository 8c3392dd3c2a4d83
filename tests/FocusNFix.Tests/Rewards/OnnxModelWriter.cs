using System.Text;

namespace FocusNFix.Tests.Rewards;

/// <summary>
/// Writes tiny ONNX models (protobuf, by hand: no onnx package here) so tests can feed the ONNX source
/// models with known, simple behaviour. Field numbers follow onnx.proto (ModelProto, GraphProto,
/// NodeProto, AttributeProto, ValueInfoProto, TypeProto, TensorShapeProto).
/// </summary>
public static class OnnxModelWriter
{
    /// <summary>One graph node; attributes are int lists (kernel_shape, strides, axes) or single ints.</summary>
    public sealed record Node(string OpType, string[] Inputs, string[] Outputs,
        Dictionary<string, long[]>? Ints = null, Dictionary<string, long>? Int = null);

    /// <summary>A float32 graph input or output; a dim is a number or a symbolic name.</summary>
    public sealed record Value(string Name, params object[] Dims);

    public static byte[] Model(IEnumerable<Node> nodes, Value input, Value output, int opset = 13)
    {
        var graph = new Proto();
        foreach (var n in nodes) graph.Message(1, NodeProto(n));
        graph.String(2, "test_graph");
        graph.Message(11, ValueInfo(input));
        graph.Message(12, ValueInfo(output));

        var opsetId = new Proto().String(1, "").Varint(2, opset);
        return new Proto().Varint(1, 7).String(2, "FocusNFix.Tests").Message(7, graph).Message(8, opsetId).ToArray();
    }

    static Proto NodeProto(Node n)
    {
        var p = new Proto();
        foreach (var i in n.Inputs) p.String(1, i);
        foreach (var o in n.Outputs) p.String(2, o);
        p.String(3, n.OpType + "_0").String(4, n.OpType);
        foreach (var (name, values) in n.Ints ?? new())
        {
            var a = new Proto().String(1, name);
            foreach (var v in values) a.Varint(8, v);
            p.Message(5, a.Varint(20, 7)); // AttributeType.INTS
        }
        foreach (var (name, value) in n.Int ?? new())
            p.Message(5, new Proto().String(1, name).Varint(3, value).Varint(20, 2)); // AttributeType.INT
        return p;
    }

    static Proto ValueInfo(Value v)
    {
        var shape = new Proto();
        foreach (var d in v.Dims)
            shape.Message(1, d is string s ? new Proto().String(2, s) : new Proto().Varint(1, Convert.ToInt64(d)));
        var tensorType = new Proto().Varint(1, 1).Message(2, shape); // elem_type FLOAT
        return new Proto().String(1, v.Name).Message(2, new Proto().Message(1, tensorType));
    }

    sealed class Proto
    {
        readonly MemoryStream _buf = new();

        void Raw(ulong v)
        {
            while (v >= 0x80) { _buf.WriteByte((byte)(v | 0x80)); v >>= 7; }
            _buf.WriteByte((byte)v);
        }

        public Proto Varint(int field, long value) { Raw((ulong)(field << 3)); Raw((ulong)value); return this; }

        public Proto Bytes(int field, byte[] data)
        {
            Raw((ulong)(field << 3 | 2));
            Raw((ulong)data.Length);
            _buf.Write(data);
            return this;
        }

        public Proto String(int field, string s) => Bytes(field, Encoding.UTF8.GetBytes(s));
        public Proto Message(int field, Proto m) => Bytes(field, m.ToArray());
        public byte[] ToArray() => _buf.ToArray();
    }
}
