# The sandbox defines np (numpy) before this code runs.
# A hand-written exploration function for traffic signals (algo.espark.generator = "files"): while some phase
# would serve waiting or approaching vehicles, phases that serve none are not worth trying.
def compute_mask(intersections: list, action_space: list):
    total_mask = np.ones((len(intersections), len(action_space)), dtype=np.int64)
    for i, node in enumerate(intersections):
        moves = node["movements"]
        demand = np.array(
            [sum(moves[m]["car_num"] + moves[m]["stop_car_num"] for m in phase.split("-")) for phase in action_space]
        )
        if demand.max() > 0:
            total_mask[i] = (demand > 0).astype(np.int64)
    return total_mask, {}
