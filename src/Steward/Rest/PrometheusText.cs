using System.Globalization;
using System.Text;

namespace Steward.Rest;

/// <summary>
/// Gauges in Prometheus' text exposition format 0.0.4, for the agent's and the router's <c>/metrics</c>: the only metrics
/// Steward exports are a few gauges set just before each scrape, so this replaces prometheus-net (whose registry, metric
/// lifetimes, EventCounter and Meter adapters the native binary carried in every process for these few lines). The
/// output is the same as prometheus-net 8 printed: families in the order they were created, each with
/// <c># HELP</c> and <c># TYPE … gauge</c>; series in the order their labels were first set, constant labels first;
/// values formatted with "g" (shortest round-trip). A family without label names always has its one series (0 until
/// set); a family with label names has a series per label set ever set (a backend that went away keeps its last value).
/// Thread-safe: a scrape may run while another sets values.
/// </summary>
internal sealed class PrometheusText
{
    private readonly object _gate = new();
    private readonly List<Gauge> _families = [];
    private readonly string _constantLabels;

    /// <param name="constantLabels">labels on every series (the agent's scope and name), in this order</param>
    public PrometheusText(params (string Name, string Value)[] constantLabels)
    {
        _constantLabels = string.Join(',', constantLabels.Select(l => Label(l.Name, l.Value)));
    }

    public Gauge CreateGauge(string name, string help, params string[] labelNames)
    {
        var gauge = new Gauge(this, name, help, labelNames);
        lock (_gate)
        {
            _families.Add(gauge);
        }

        return gauge;
    }

    /// <summary>Every family and series, as a scrape sees it.</summary>
    public string Render()
    {
        var sb = new StringBuilder(1024);
        lock (_gate)
        {
            foreach (var family in _families)
            {
                sb.Append("# HELP ").Append(family.Name).Append(' ').Append(EscapeHelp(family.Help)).Append('\n');
                sb.Append("# TYPE ").Append(family.Name).Append(" gauge\n");
                foreach (var (labels, value) in family.Series)
                {
                    sb.Append(family.Name);
                    var all = _constantLabels.Length == 0 ? labels : labels.Length == 0 ? _constantLabels : _constantLabels + "," + labels;
                    if (all.Length > 0)
                    {
                        sb.Append('{').Append(all).Append('}');
                    }

                    sb.Append(' ').Append(Format(value)).Append('\n');
                }
            }
        }

        return sb.ToString();
    }

    public async Task WriteAsync(Stream output, CancellationToken ct) =>
        await output.WriteAsync(Encoding.UTF8.GetBytes(Render()), ct).ConfigureAwait(false);

    internal static string Format(double value) => value switch
    {
        double.PositiveInfinity => "+Inf",
        double.NegativeInfinity => "-Inf",
        _ => value.ToString("g", CultureInfo.InvariantCulture),
    };

    private static string Label(string name, string value) => name + "=\"" + EscapeLabelValue(value) + "\"";

    private static string EscapeLabelValue(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string EscapeHelp(string help) =>
        help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>One gauge family: its series by label values.</summary>
    internal sealed class Gauge
    {
        private readonly PrometheusText _owner;
        private readonly string[] _labelNames;
        private readonly List<(string Labels, double Value)> _series = [];
        private readonly Dictionary<string, int> _index = new(StringComparer.Ordinal);

        internal Gauge(PrometheusText owner, string name, string help, string[] labelNames)
        {
            _owner = owner;
            Name = name;
            Help = help;
            _labelNames = labelNames;
            if (labelNames.Length == 0)
            {
                _series.Add(("", 0));
                _index[""] = 0;
            }
        }

        public string Name { get; }

        public string Help { get; }

        internal List<(string Labels, double Value)> Series => _series;

        /// <summary>Sets the series with these label values (one per label name, in order; none for an unlabelled gauge).</summary>
        public void Set(double value, params string[] labelValues)
        {
            if (labelValues.Length != _labelNames.Length)
            {
                throw new ArgumentException($"{Name} has {_labelNames.Length} labels, got {labelValues.Length} values", nameof(labelValues));
            }

            var labels = string.Join(',', _labelNames.Select((n, i) => Label(n, labelValues[i])));
            lock (_owner._gate)
            {
                if (_index.TryGetValue(labels, out var i))
                {
                    _series[i] = (labels, value);
                }
                else
                {
                    _index[labels] = _series.Count;
                    _series.Add((labels, value));
                }
            }
        }
    }
}
