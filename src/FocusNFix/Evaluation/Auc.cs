namespace FocusNFix.Evaluation;

/// <summary>Area under the ROC curve of a scored binary classification.</summary>
public static class Auc
{
    /// <summary>
    /// ROC AUC: the probability that a random positive scores higher than a random negative, ties counting one half
    /// (the Mann-Whitney U statistic over n_pos * n_neg, computed from average ranks in O(n log n)). Returns NaN when
    /// there is no positive or no negative, since the curve is then undefined. NaN scores are refused.
    /// </summary>
    public static double RocAuc(IReadOnlyList<double> scores, IReadOnlyList<bool> labels)
    {
        if (scores.Count != labels.Count)
            throw new InvalidInputException($"ROC AUC: {scores.Count} scores but {labels.Count} labels; expected one label per score");
        int n = scores.Count;
        for (int i = 0; i < n; i++)
            if (double.IsNaN(scores[i])) throw new InvalidInputException($"ROC AUC: score {i} is NaN");
        long positives = labels.Count(l => l), negatives = n - positives;
        if (positives == 0 || negatives == 0) return double.NaN;

        var order = Enumerable.Range(0, n).OrderBy(i => scores[i]).ToArray();
        double positiveRankSum = 0;
        for (int start = 0; start < n;)
        {
            int end = start;
            while (end + 1 < n && scores[order[end + 1]] == scores[order[start]]) end++;
            // Ranks are 1-based; a run of tied scores shares the mean of its ranks.
            double rank = (start + end) / 2.0 + 1;
            for (int k = start; k <= end; k++) if (labels[order[k]]) positiveRankSum += rank;
            start = end + 1;
        }
        double u = positiveRankSum - positives * (positives + 1) / 2.0;
        return u / ((double)positives * negatives);
    }
}
