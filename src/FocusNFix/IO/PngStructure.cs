using System.Buffers.Binary;

namespace FocusNFix.IO;

/// <summary>
/// Checks a PNG's chunk structure before its metadata is trusted: the signature, IHDR first, every chunk's length and
/// CRC, IEND last. ImageSharp's Identify reads the header and text chunks only, so a file cut short after them (a copy
/// interrupted, a download stopped) passed as an fnf image and was re-created from a truncated record.
/// </summary>
public static class PngStructure
{
    static readonly byte[] Signature = { 0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A };
    static readonly uint[] CrcTable = MakeTable();

    public static void Check(string path)
    {
        var bytes = InputFile.ReadAllBytes(path, "image file");
        if (bytes.Length < Signature.Length || !bytes.AsSpan(0, Signature.Length).SequenceEqual(Signature))
            throw new InvalidInputException($"{path}: not a PNG file (no PNG signature)");
        long at = Signature.Length;
        int index = 0;
        while (true)
        {
            if (at + 12 > bytes.Length)
                throw new InvalidInputException($"{path}: the PNG ends after {bytes.Length} bytes, inside chunk {index} (truncated? expected an IEND chunk last)");
            uint length = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan((int)at));
            var type = System.Text.Encoding.ASCII.GetString(bytes, (int)at + 4, 4);
            if (length > int.MaxValue || at + 12 + length > bytes.Length)
                throw new InvalidInputException($"{path}: PNG chunk {index} '{type}' declares {length} bytes but the file ends first (truncated?)");
            var body = bytes.AsSpan((int)at + 4, 4 + (int)length);
            uint stored = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan((int)(at + 8 + length)));
            if (Crc(body) != stored) throw new InvalidInputException($"{path}: PNG chunk {index} '{type}' fails its CRC check (the file is damaged)");
            if (index == 0 && type != "IHDR") throw new InvalidInputException($"{path}: the first PNG chunk is '{type}', expected IHDR");
            at += 12 + length;
            index++;
            if (type == "IEND")
            {
                if (at != bytes.Length) throw new InvalidInputException($"{path}: {bytes.Length - at} bytes follow the PNG's IEND chunk (expected the file to end there)");
                return;
            }
        }
    }

    static uint Crc(ReadOnlySpan<byte> data)
    {
        uint c = 0xFFFFFFFF;
        foreach (var b in data) c = CrcTable[(c ^ b) & 0xFF] ^ (c >> 8);
        return c ^ 0xFFFFFFFF;
    }

    static uint[] MakeTable()
    {
        var table = new uint[256];
        for (uint n = 0; n < 256; n++)
        {
            uint c = n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
        return table;
    }
}
