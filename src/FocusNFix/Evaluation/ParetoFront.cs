namespace FocusNFix.Evaluation;

/// <summary>
/// The Pareto front of a set of points in two figures, one to minimise (a defect rate) and one to maximise
/// (preservation, alignment): a point is on the front when no other point is at least as good in both and better in one.
/// Points with a NaN figure are never on it.
/// </summary>
public static class ParetoFront
{
    /// <summary>Indices of the points on the front, ordered by the maximised figure (ascending), so they draw as a curve.</summary>
    public static IReadOnlyList<int> Of(IReadOnlyList<(double Minimise, double Maximise)> points)
    {
        var front = new List<int>();
        for (int i = 0; i < points.Count; i++)
        {
            var (a, b) = points[i];
            if (double.IsNaN(a) || double.IsNaN(b)) continue;
            bool dominated = false;
            for (int j = 0; j < points.Count && !dominated; j++)
            {
                if (j == i) continue;
                var (c, d) = points[j];
                if (double.IsNaN(c) || double.IsNaN(d)) continue;
                dominated = c <= a && d >= b && (c < a || d > b);
            }
            if (!dominated) front.Add(i);
        }
        return front.OrderBy(i => points[i].Maximise).ThenBy(i => points[i].Minimise).ThenBy(i => i).ToList();
    }
}
