using System.Buffers.Binary;
using System.Globalization;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Steward.Core.Configuration;

namespace Steward.Router.PgBouncer;

/// <summary>What PgBouncer's admin console answered to one command.</summary>
/// <param name="Tag">The command tag (<c>PAUSE</c>, <c>RESUME</c>, <c>SHOW</c>…).</param>
/// <param name="Columns">Column names of the rows, if the command returned any.</param>
/// <param name="Rows">The rows, each value as text (null for NULL).</param>
public sealed record AdminResult(string Tag, IReadOnlyList<string> Columns, IReadOnlyList<IReadOnlyList<string?>> Rows);

/// <summary>PgBouncer could not be reached, refused the login, or answered a command with an error.</summary>
public sealed class AdminConsoleException : Exception
{
    public AdminConsoleException(string message, string? sqlState = null, Exception? inner = null) : base(message, inner)
    {
        SqlState = sqlState;
    }

    public AdminConsoleException() { }

    public AdminConsoleException(string message) : base(message) { }

    public AdminConsoleException(string message, Exception inner) : base(message, inner) { }

    /// <summary>The SQLSTATE of an ErrorResponse; null when the failure was not an answer (connection, protocol).</summary>
    public string? SqlState { get; }
}

/// <summary>A connection to a PgBouncer admin console (one command at a time).</summary>
public interface IAdminConsole : IAsyncDisposable
{
    Task<AdminResult> ExecuteAsync(string command, CancellationToken ct);
}

/// <summary>
/// A client of PgBouncer's admin console (the <c>pgbouncer</c> database): the PostgreSQL wire protocol's startup,
/// authentication (trust, cleartext, md5, SCRAM-SHA-256) and <b>simple query</b> protocol, nothing else.
/// <para>
/// Not Npgsql: the admin console supports only the simple query protocol, and Npgsql sends every command with the
/// extended one (Parse/Bind/Execute); PgBouncer 1.18 answers it with "extended query protocol not supported by admin
/// console" and closes the connection, whatever the connection string (<c>Server Compatibility Mode=NoTypeLoading</c>
/// only spares the type-loading query). No TLS: reach the console over loopback or a private network.
/// </para>
/// </summary>
public sealed class AdminConsole : IAdminConsole
{
    private const int ProtocolVersion = 196608; // 3.0
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly byte[] _header = new byte[5];

    private AdminConsole(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    /// <summary>Connects and logs in; throws <see cref="AdminConsoleException"/> when it cannot (cancel <paramref name="ct"/> to bound it).</summary>
    public static async Task<AdminConsole> ConnectAsync(PgBouncerConfig config, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(config);
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        AdminConsole? console = null;
        try
        {
            await socket.ConnectAsync(config.Host, config.Port, ct).ConfigureAwait(false);
            console = new AdminConsole(socket);
            await console.StartupAsync(config, ct).ConfigureAwait(false);
            return console;
        }
        catch (Exception e) when (e is SocketException or IOException or EndOfStreamException)
        {
            await DisposeAsync(console, socket).ConfigureAwait(false);
            throw new AdminConsoleException($"cannot reach the admin console at {config.Address}: {e.Message}", null, e);
        }
        catch (AdminConsoleException e) when (e.SqlState is not null)
        {
            await DisposeAsync(console, socket).ConfigureAwait(false);
            throw new AdminConsoleException($"the admin console at {config.Address} refused the login of {config.User}: {e.Message}", e.SqlState, e);
        }
        catch
        {
            await DisposeAsync(console, socket).ConfigureAwait(false);
            throw;
        }
    }

    private static async ValueTask DisposeAsync(AdminConsole? console, Socket socket)
    {
        if (console is not null)
        {
            await console.DisposeAsync().ConfigureAwait(false);
        }
        else
        {
            socket.Dispose();
        }
    }

    /// <summary>Sends one command (simple query protocol) and reads the whole answer up to ReadyForQuery.</summary>
    public async Task<AdminResult> ExecuteAsync(string command, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(command);
        try
        {
            var text = Encoding.UTF8.GetBytes(command);
            var message = new byte[1 + 4 + text.Length + 1];
            message[0] = (byte)'Q';
            BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), 4 + text.Length + 1);
            text.CopyTo(message, 5);
            await _stream.WriteAsync(message, ct).ConfigureAwait(false);

            string tag = "";
            var columns = new List<string>();
            var rows = new List<IReadOnlyList<string?>>();
            AdminConsoleException? error = null;
            while (true)
            {
                var (type, body) = await ReadMessageAsync(ct).ConfigureAwait(false);
                switch (type)
                {
                    case 'T':
                        columns = ParseRowDescription(body);
                        break;
                    case 'D':
                        rows.Add(ParseDataRow(body));
                        break;
                    case 'C':
                        tag = ReadCString(body, 0, out _);
                        break;
                    case 'E':
                        error = ParseError(body);
                        break;
                    case 'Z':
                        return error is null ? new AdminResult(tag, columns, rows) : throw error;
                    default:
                        break; // notices, parameter status, empty query: nothing to keep
                }
            }
        }
        catch (Exception e) when (e is SocketException or IOException or EndOfStreamException)
        {
            throw new AdminConsoleException($"the admin console connection failed during '{command}': {e.Message}", null, e);
        }
    }

    private async Task StartupAsync(PgBouncerConfig config, CancellationToken ct)
    {
        var parameters = new MemoryStream();
        foreach (var part in new[] { "user", config.User, "database", "pgbouncer" })
        {
            parameters.Write(Encoding.UTF8.GetBytes(part));
            parameters.WriteByte(0);
        }

        parameters.WriteByte(0);
        var startup = new byte[8 + parameters.Length];
        BinaryPrimitives.WriteInt32BigEndian(startup, startup.Length);
        BinaryPrimitives.WriteInt32BigEndian(startup.AsSpan(4), ProtocolVersion);
        parameters.ToArray().CopyTo(startup, 8);
        await _stream.WriteAsync(startup, ct).ConfigureAwait(false);

        Scram? scram = null;
        while (true)
        {
            var (type, body) = await ReadMessageAsync(ct).ConfigureAwait(false);
            switch (type)
            {
                case 'E':
                    throw ParseError(body);
                case 'Z':
                    return;
                case 'R':
                    var code = BinaryPrimitives.ReadInt32BigEndian(body);
                    switch (code)
                    {
                        case 0:
                            break;
                        case 3:
                            await SendPasswordAsync(Encoding.UTF8.GetBytes(PasswordFor(config)), ct).ConfigureAwait(false);
                            break;
                        case 5:
                            await SendPasswordAsync(Encoding.ASCII.GetBytes(Md5Password(config.User, PasswordFor(config), body.AsSpan(4, 4))), ct).ConfigureAwait(false);
                            break;
                        case 10:
                            var mechanisms = Encoding.UTF8.GetString(body, 4, body.Length - 4).Split('\0', StringSplitOptions.RemoveEmptyEntries);
                            if (!mechanisms.Contains("SCRAM-SHA-256"))
                            {
                                throw new AdminConsoleException($"{config.Address} asks for SASL mechanisms [{string.Join(", ", mechanisms)}]; only SCRAM-SHA-256 is supported");
                            }

                            scram = new Scram(PasswordFor(config));
                            await SendSaslInitialAsync(scram.ClientFirst(), ct).ConfigureAwait(false);
                            break;
                        case 11:
                            var final = (scram ?? throw new AdminConsoleException("SASL continue without a SASL start")).ClientFinal(Encoding.UTF8.GetString(body, 4, body.Length - 4));
                            await SendSaslResponseAsync(final, ct).ConfigureAwait(false);
                            break;
                        case 12:
                            (scram ?? throw new AdminConsoleException("SASL final without a SASL start")).VerifyServer(Encoding.UTF8.GetString(body, 4, body.Length - 4));
                            break;
                        default:
                            throw new AdminConsoleException($"{config.Address} asks for an authentication method this client does not speak (code {code}); use md5, scram-sha-256, plain or trust for the admin user");
                    }

                    break;
                default:
                    break; // ParameterStatus, BackendKeyData, notices
            }
        }
    }

    /// <summary>The configured password, or the one the passfile holds for this console; empty when neither is set.</summary>
    internal static string PasswordFor(PgBouncerConfig config)
    {
        if (config.Password is { } password)
        {
            return password;
        }

        if (config.Passfile is not { } file)
        {
            return "";
        }

        try
        {
            return Passfile.Find(File.ReadAllLines(file), config.Host, config.Port, "pgbouncer", config.User)
                   ?? throw new AdminConsoleException($"{file} has no line for {config.Host}:{config.Port}:pgbouncer:{config.User}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AdminConsoleException($"cannot read passfile {file}: {e.Message}", null, e);
        }
    }

    internal static string Md5Password(string user, string password, ReadOnlySpan<byte> salt)
    {
#pragma warning disable CA5351 // MD5 is what PostgreSQL's md5 authentication is made of
        var inner = Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(password + user)));
        var outer = MD5.HashData([.. Encoding.ASCII.GetBytes(inner), .. salt]);
#pragma warning restore CA5351
        return "md5" + Convert.ToHexStringLower(outer);
    }

    private Task SendPasswordAsync(byte[] password, CancellationToken ct)
    {
        var message = new byte[1 + 4 + password.Length + 1];
        message[0] = (byte)'p';
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), 4 + password.Length + 1);
        password.CopyTo(message, 5);
        return _stream.WriteAsync(message, ct).AsTask();
    }

    private Task SendSaslInitialAsync(string clientFirst, CancellationToken ct)
    {
        var mechanism = Encoding.ASCII.GetBytes("SCRAM-SHA-256\0");
        var data = Encoding.UTF8.GetBytes(clientFirst);
        var message = new byte[1 + 4 + mechanism.Length + 4 + data.Length];
        message[0] = (byte)'p';
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), message.Length - 1);
        mechanism.CopyTo(message, 5);
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(5 + mechanism.Length), data.Length);
        data.CopyTo(message, 5 + mechanism.Length + 4);
        return _stream.WriteAsync(message, ct).AsTask();
    }

    private Task SendSaslResponseAsync(string response, CancellationToken ct)
    {
        var data = Encoding.UTF8.GetBytes(response);
        var message = new byte[1 + 4 + data.Length];
        message[0] = (byte)'p';
        BinaryPrimitives.WriteInt32BigEndian(message.AsSpan(1), 4 + data.Length);
        data.CopyTo(message, 5);
        return _stream.WriteAsync(message, ct).AsTask();
    }

    private async Task<(char Type, byte[] Body)> ReadMessageAsync(CancellationToken ct)
    {
        await _stream.ReadExactlyAsync(_header, ct).ConfigureAwait(false);
        var length = BinaryPrimitives.ReadInt32BigEndian(_header.AsSpan(1));
        if (length is < 4 or > 16 * 1024 * 1024)
        {
            throw new AdminConsoleException($"the admin console sent a message of impossible length {length}");
        }

        var body = new byte[length - 4];
        await _stream.ReadExactlyAsync(body, ct).ConfigureAwait(false);
        return ((char)_header[0], body);
    }

    private static List<string> ParseRowDescription(byte[] body)
    {
        var count = BinaryPrimitives.ReadInt16BigEndian(body);
        var names = new List<string>(count);
        var offset = 2;
        for (var i = 0; i < count; i++)
        {
            names.Add(ReadCString(body, offset, out offset));
            offset += 18; // table oid, column, type oid, size, modifier, format
        }

        return names;
    }

    private static List<string?> ParseDataRow(byte[] body)
    {
        var count = BinaryPrimitives.ReadInt16BigEndian(body);
        var values = new List<string?>(count);
        var offset = 2;
        for (var i = 0; i < count; i++)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(body.AsSpan(offset));
            offset += 4;
            if (length < 0)
            {
                values.Add(null);
                continue;
            }

            values.Add(Encoding.UTF8.GetString(body, offset, length));
            offset += length;
        }

        return values;
    }

    private static AdminConsoleException ParseError(byte[] body)
    {
        string? code = null, message = null;
        var offset = 0;
        while (offset < body.Length && body[offset] != 0)
        {
            var field = (char)body[offset];
            var value = ReadCString(body, offset + 1, out offset);
            if (field == 'C')
            {
                code = value;
            }
            else if (field == 'M')
            {
                message = value;
            }
        }

        return new AdminConsoleException(message ?? "error without a message", code);
    }

    private static string ReadCString(byte[] body, int offset, out int next)
    {
        var end = Array.IndexOf(body, (byte)0, offset);
        if (end < 0)
        {
            end = body.Length;
        }

        next = end + 1;
        return Encoding.UTF8.GetString(body, offset, end - offset);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.Connected)
            {
                // Terminate: a polite goodbye, so PgBouncer does not log a lost client.
                await _stream.WriteAsync("X\0\0\0\u0004"u8.ToArray()).AsTask().WaitAsync(TimeSpan.FromMilliseconds(200)).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or SocketException or TimeoutException or ObjectDisposedException)
        {
        }

        await _stream.DisposeAsync().ConfigureAwait(false);
    }

    /// <summary>SCRAM-SHA-256 (RFC 7677) as PostgreSQL and PgBouncer speak it: no channel binding, the user name from the startup packet.</summary>
    private sealed class Scram(string password)
    {
        private readonly string _clientNonce = Convert.ToBase64String(RandomNumberGenerator.GetBytes(18));
        private string _clientFirstBare = "";
        private byte[] _serverSignature = [];

        public string ClientFirst()
        {
            _clientFirstBare = "n=,r=" + _clientNonce;
            return "n,," + _clientFirstBare;
        }

        public string ClientFinal(string serverFirst)
        {
            var fields = serverFirst.Split(',').Where(f => f.Length > 2 && f[1] == '=').ToDictionary(f => f[0], f => f[2..]);
            if (!fields.TryGetValue('r', out var nonce) || !nonce.StartsWith(_clientNonce, StringComparison.Ordinal)
                || !fields.TryGetValue('s', out var salt) || !fields.TryGetValue('i', out var iterationsText)
                || !int.TryParse(iterationsText, NumberStyles.None, CultureInfo.InvariantCulture, out var iterations))
            {
                throw new AdminConsoleException($"unexpected SCRAM server-first message '{serverFirst}'");
            }

            var salted = Rfc2898DeriveBytes.Pbkdf2(Encoding.UTF8.GetBytes(password), Convert.FromBase64String(salt), iterations, HashAlgorithmName.SHA256, 32);
            var clientKey = HMACSHA256.HashData(salted, "Client Key"u8);
            var storedKey = SHA256.HashData(clientKey);
            var withoutProof = "c=biws,r=" + nonce;
            var authMessage = Encoding.UTF8.GetBytes(_clientFirstBare + "," + serverFirst + "," + withoutProof);
            var signature = HMACSHA256.HashData(storedKey, authMessage);
            var proof = new byte[clientKey.Length];
            for (var i = 0; i < proof.Length; i++)
            {
                proof[i] = (byte)(clientKey[i] ^ signature[i]);
            }

            _serverSignature = HMACSHA256.HashData(HMACSHA256.HashData(salted, "Server Key"u8), authMessage);
            return withoutProof + ",p=" + Convert.ToBase64String(proof);
        }

        public void VerifyServer(string serverFinal)
        {
            if (!serverFinal.StartsWith("v=", StringComparison.Ordinal)
                || !CryptographicOperations.FixedTimeEquals(Convert.FromBase64String(serverFinal[2..].Split(',')[0]), _serverSignature))
            {
                throw new AdminConsoleException("the SCRAM server signature does not match: this is not the PgBouncer that knows the password");
            }
        }
    }
}

/// <summary>The .pgpass format: <c>host:port:database:user:password</c>, <c>*</c> matches anything, <c>\:</c> and <c>\\</c> escape.</summary>
internal static class Passfile
{
    public static string? Find(IEnumerable<string> lines, string host, int port, string database, string user)
    {
        var wanted = new[] { host, port.ToString(CultureInfo.InvariantCulture), database, user };
        foreach (var line in lines)
        {
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }

            var fields = Split(line);
            if (fields.Count == 5 && Enumerable.Range(0, 4).All(i => fields[i] == "*" || fields[i] == wanted[i]))
            {
                return fields[4];
            }
        }

        return null;
    }

    private static List<string> Split(string line)
    {
        var fields = new List<string>();
        var current = new StringBuilder();
        for (var i = 0; i < line.Length; i++)
        {
            if (line[i] == '\\' && i + 1 < line.Length)
            {
                current.Append(line[++i]);
            }
            else if (line[i] == ':' && fields.Count < 4)
            {
                fields.Add(current.ToString());
                current.Clear();
            }
            else
            {
                current.Append(line[i]);
            }
        }

        fields.Add(current.ToString());
        return fields;
    }
}
