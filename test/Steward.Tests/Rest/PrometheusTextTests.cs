using Steward.Rest;
using Xunit;

namespace Steward.Tests.Rest;

/// <summary>
/// <c>/metrics</c> replaced prometheus-net with <see cref="PrometheusText"/> (the native binary's size is memory in every
/// process); scrapers and dashboards must see the same text. The expected texts are what prometheus-net 8.2.1 printed
/// for the agent and the router (captured from a demo cluster before the change).
/// </summary>
public sealed class PrometheusTextTests
{
    [Fact]
    public void Agent_gauges_print_as_prometheus_net_printed_them_with_scope_and_name_on_every_series()
    {
        var text = new PrometheusText(("scope", "demo"), ("name", "node1"));
        var version = text.CreateGauge("patroni_version", "Steward version (as a number: major*10000 + minor*100 + patch).");
        var running = text.CreateGauge("patroni_postgres_running", "1 if PostgreSQL is running, 0 otherwise.");
        var xlog = text.CreateGauge("patroni_xlog_location", "Current WAL location on the primary (bytes).");
        var seen = text.CreateGauge("patroni_dcs_last_seen", "Unix time when etcd was last reached.");
        version.Set(100);
        running.Set(1);
        xlog.Set(67108960);
        seen.Set(1796133337);

        Assert.Equal(
            """
            # HELP patroni_version Steward version (as a number: major*10000 + minor*100 + patch).
            # TYPE patroni_version gauge
            patroni_version{scope="demo",name="node1"} 100
            # HELP patroni_postgres_running 1 if PostgreSQL is running, 0 otherwise.
            # TYPE patroni_postgres_running gauge
            patroni_postgres_running{scope="demo",name="node1"} 1
            # HELP patroni_xlog_location Current WAL location on the primary (bytes).
            # TYPE patroni_xlog_location gauge
            patroni_xlog_location{scope="demo",name="node1"} 67108960
            # HELP patroni_dcs_last_seen Unix time when etcd was last reached.
            # TYPE patroni_dcs_last_seen gauge
            patroni_dcs_last_seen{scope="demo",name="node1"} 1796133337

            """.ReplaceLineEndings("\n"),
            text.Render());
    }

    [Fact]
    public void Router_families_list_series_in_first_set_order_keep_gone_ones_and_print_unlabelled_gauges_from_zero()
    {
        var text = new PrometheusText();
        var sessions = text.CreateGauge("steward_router_sessions", "Current sessions per listener and backend.", "listener", "backend");
        var errors = text.CreateGauge("steward_router_errors_total", "Connection errors (no backend within hold_timeout, connect failures).", "listener");
        var writer = text.CreateGauge("steward_router_writer_available", "1 when the write port has a leader to send connections to.");
        var pause = text.CreateGauge("steward_router_pgbouncer_last_pause_seconds",
            "How long each PgBouncer's last switchover pause lasted (PAUSE sent to RESUME answered).", "pgbouncer");

        Assert.Equal(
            """
            # HELP steward_router_sessions Current sessions per listener and backend.
            # TYPE steward_router_sessions gauge
            # HELP steward_router_errors_total Connection errors (no backend within hold_timeout, connect failures).
            # TYPE steward_router_errors_total gauge
            # HELP steward_router_writer_available 1 when the write port has a leader to send connections to.
            # TYPE steward_router_writer_available gauge
            steward_router_writer_available 0
            # HELP steward_router_pgbouncer_last_pause_seconds How long each PgBouncer's last switchover pause lasted (PAUSE sent to RESUME answered).
            # TYPE steward_router_pgbouncer_last_pause_seconds gauge

            """.ReplaceLineEndings("\n"),
            text.Render());

        errors.Set(0, "write");
        errors.Set(0, "read");
        sessions.Set(3, "write", "node1");
        sessions.Set(1, "read", "node2");
        sessions.Set(2, "write", "node1");
        writer.Set(1);
        pause.Set(0.0625, "127.0.0.1:6432");

        Assert.Equal(
            """
            # HELP steward_router_sessions Current sessions per listener and backend.
            # TYPE steward_router_sessions gauge
            steward_router_sessions{listener="write",backend="node1"} 2
            steward_router_sessions{listener="read",backend="node2"} 1
            # HELP steward_router_errors_total Connection errors (no backend within hold_timeout, connect failures).
            # TYPE steward_router_errors_total gauge
            steward_router_errors_total{listener="write"} 0
            steward_router_errors_total{listener="read"} 0
            # HELP steward_router_writer_available 1 when the write port has a leader to send connections to.
            # TYPE steward_router_writer_available gauge
            steward_router_writer_available 1
            # HELP steward_router_pgbouncer_last_pause_seconds How long each PgBouncer's last switchover pause lasted (PAUSE sent to RESUME answered).
            # TYPE steward_router_pgbouncer_last_pause_seconds gauge
            steward_router_pgbouncer_last_pause_seconds{pgbouncer="127.0.0.1:6432"} 0.0625

            """.ReplaceLineEndings("\n"),
            text.Render());
    }

    [Theory]
    [InlineData(0, "0")]
    [InlineData(1, "1")]
    [InlineData(-1, "-1")]
    [InlineData(150018, "150018")]
    [InlineData(0.1, "0.1")]
    [InlineData(1.5e16, "15000000000000000")]
    [InlineData(double.NaN, "NaN")]
    [InlineData(double.PositiveInfinity, "+Inf")]
    [InlineData(double.NegativeInfinity, "-Inf")]
    public void Values_are_formatted_with_the_invariant_shortest_round_trip_form(double value, string expected) =>
        Assert.Equal(expected, PrometheusText.Format(value));

    [Fact]
    public void Label_values_and_help_are_escaped_as_the_exposition_format_requires()
    {
        var text = new PrometheusText(("scope", "a\"b\\c\nd"));
        text.CreateGauge("g", "line one\nback\\slash", "l").Set(1, "x\"y");

        Assert.Equal(
            "# HELP g line one\\nback\\\\slash\n# TYPE g gauge\ng{scope=\"a\\\"b\\\\c\\nd\",l=\"x\\\"y\"} 1\n",
            text.Render());
    }

    [Fact]
    public void A_wrong_number_of_label_values_is_refused()
    {
        var gauge = new PrometheusText().CreateGauge("g", "h", "listener", "backend");

        Assert.Throws<ArgumentException>(() => gauge.Set(1, "write"));
    }
}
