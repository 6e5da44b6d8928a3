using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace HcService.Contract.Data;

/// <summary>
/// The NumPy .npy format (version 1.0) for flat token arrays: magic "\x93NUMPY", version, a little-endian uint16
/// header length, a Python-dict header ({'descr': '&lt;u2', 'fortran_order': False, 'shape': (N,), }) padded with
/// spaces to a 64-byte boundary, then the raw little-endian data. OLMo's pre-tokenised shards use the same layout.
/// </summary>
public static partial class NpyFile
{
    static readonly byte[] Magic = [0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y'];
    /// <summary>Header bytes written by <see cref="WriteHeader"/>: fixed, so the shape can be rewritten in place.</summary>
    public const int HeaderBytes = 128;

    public static void WriteHeader(Stream stream, TokenDType dtype, long count)
    {
        var dict = $"{{'descr': '{(dtype == TokenDType.UInt16 ? "<u2" : "<u4")}', 'fortran_order': False, 'shape': ({count.ToString(CultureInfo.InvariantCulture)},), }}";
        var header = dict.PadRight(HeaderBytes - 10 - 1) + "\n";
        if (10 + header.Length != HeaderBytes) throw new InvalidOperationException($"npy header for {count} tokens does not fit {HeaderBytes} bytes");
        stream.Write(Magic);
        stream.Write([1, 0]);
        stream.Write(BitConverter.GetBytes((ushort)header.Length));
        stream.Write(Encoding.ASCII.GetBytes(header));
    }

    /// <summary>Reads the header: the element type, the element count and the offset of the data.</summary>
    public static (TokenDType DType, long Count, long DataOffset) ReadHeader(Stream stream, string path)
    {
        Span<byte> pre = stackalloc byte[10];
        stream.ReadExactly(pre);
        if (!pre[..6].SequenceEqual(Magic)) throw new InvalidDataException($"{path}: not a .npy file (bad magic)");
        var major = pre[6];
        long headerLen, offset;
        if (major == 1) { headerLen = BitConverter.ToUInt16(pre[8..10]); offset = 10; }
        else
        {
            Span<byte> two = stackalloc byte[2];
            stream.ReadExactly(two);
            headerLen = BitConverter.ToUInt32([pre[8], pre[9], two[0], two[1]]);
            offset = 12;
        }
        if (headerLen > 1 << 20) throw new InvalidDataException($"{path}: a .npy header of {headerLen} bytes is not plausible");
        var header = new byte[headerLen];
        stream.ReadExactly(header);
        var text = Encoding.ASCII.GetString(header);
        var descr = DescrRegex().Match(text);
        var shape = ShapeRegex().Match(text);
        if (!descr.Success || !shape.Success) throw new InvalidDataException($"{path}: unreadable .npy header {text.Trim()}");
        if (text.Contains("'fortran_order': True")) throw new InvalidDataException($"{path}: Fortran-ordered arrays are not token files");
        var dtype = descr.Groups[1].Value switch
        {
            "<u2" or "|u2" => TokenDType.UInt16,
            "<u4" or "|u4" => TokenDType.UInt32,
            var other => throw new InvalidDataException($"{path}: dtype {other} is not a token type (uint16 or uint32)"),
        };
        var dims = shape.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        long count;
        try { count = dims.Aggregate(1L, (acc, dim) => checked(acc * long.Parse(dim, NumberStyles.None, CultureInfo.InvariantCulture))); }
        catch (Exception e) when (e is OverflowException or FormatException) { throw new InvalidDataException($"{path}: .npy shape {shape.Groups[1].Value} is not a size"); }
        return (dtype, count, offset + headerLen);
    }

    [GeneratedRegex(@"'descr':\s*'([^']+)'")]
    private static partial Regex DescrRegex();
    [GeneratedRegex(@"'shape':\s*\(([^)]*)\)")]
    private static partial Regex ShapeRegex();
}

public enum TokenDType { UInt16, UInt32 }
