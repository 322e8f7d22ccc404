namespace Steward.IntegrationTests.Infrastructure;

/// <summary>Waiting for a condition with a generous timeout, never sleep-and-hope.</summary>
internal static class Poll
{
    public static async Task UntilAsync(Func<Task<bool>> condition, TimeSpan timeout, string what, Func<Task<string>>? describe = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        Exception? last = null;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                if (await condition().ConfigureAwait(false))
                {
                    return;
                }
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                last = e;
            }

            await Task.Delay(100).ConfigureAwait(false);
        }

        var detail = describe is null ? "" : "\n" + await describe().ConfigureAwait(false);
        throw new TimeoutException($"timed out after {timeout.TotalSeconds:0} s waiting for {what}{(last is null ? "" : $" (last error: {last.Message})")}{detail}");
    }
}
