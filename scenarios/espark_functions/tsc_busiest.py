# The sandbox defines np (numpy) before this code runs.
# A hand-written exploration function for traffic signals (algo.espark.generator = "files"): only the phases that
# serve at least half as many halted vehicles as the busiest phase are worth trying.
def compute_mask(intersections: list, action_space: list):
    temperature = 0.5  # share of the busiest phase's queue a phase must serve to stay allowed
    total_mask = np.ones((len(intersections), len(action_space)), dtype=np.int64)
    for i, node in enumerate(intersections):
        moves = node["movements"]
        queue = np.array([sum(moves[m]["stop_car_num"] for m in phase.split("-")) for phase in action_space])
        if queue.max() > 0:
            total_mask[i] = (queue >= temperature * queue.max()).astype(np.int64)
    return total_mask, {}
