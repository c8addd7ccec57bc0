"""MMDetection's CocoPanopticMetric, with per-class PQ in its results."""
from typing import Dict

from mmdet.evaluation.metrics import CocoPanopticMetric as _MMDetCocoPanopticMetric

from m2f_mm.registry import METRICS


@METRICS.register_module()
class CocoPanopticMetric(_MMDetCocoPanopticMetric):
    """``mmdet.CocoPanopticMetric``; with ``classwise=True`` the results also
    hold ``PQ_<class>``, ``SQ_<class>``, ``RQ_<class>`` (percent) of every
    class, where MMDetection only prints them. Arguments as MMDetection's.

    Per-class values come from the per-batch PQ statistics, so they need the
    default mode (no ``outfile_prefix``); with one, only the table is printed.
    """

    def compute_metrics(self, results: list) -> Dict[str, float]:
        metrics = super().compute_metrics(results)
        if self.classwise and self.tmp_dir is not None and results:
            stat = results[0]
            for more in results[1:]:
                stat += more
            _, per_class = stat.pq_average(self.categories, isthing=None)
            for cat_id, values in per_class.items():
                name = self.categories[cat_id]['name']
                for key in ('pq', 'sq', 'rq'):
                    metrics[f'{key.upper()}_{name}'] = 100 * values[key]
        return metrics
