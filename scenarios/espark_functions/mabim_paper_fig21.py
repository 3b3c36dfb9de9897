# The sandbox defines np (numpy), AgentStates and SupplyChain before this code runs.
# The paper's own exploration function for inventory: the edited function of its Fig. 21 (Appendix J, MABIM
# Lower capacity, 100 SKUs), the only one the paper prints (its "before" function and every traffic-signal
# function are not printed). Transcribed from the paper's text as it is, with what its copy lost filled in and
# marked [gap], and one marked correction:
# - [gap] the loop over the warehouses (the text uses i and warehouse_name without their loop line);
# - [gap] "capacity = supply chain [warehouse name," is cut: the warehouse's capacity, supply_chain[name, "capacity"];
# - [gap] sku_volume is used but never defined in the text: the SKUs' volumes today;
# - [correction] the paper prints np.average(..., axis=1). agent_states[w, "demand", "lookback", "all_skus"] is
#   (days, SKUs) in the released MABIM code as here, so axis=1 averages over the SKUs into one value per day and
#   `in_stock + replenishment` cannot broadcast (SKUs vs days): the printed function raises at its first call
#   (tests/test_espark_paper_functions.py shows it). axis=0, the per-SKU mean demand its comment describes, is
#   used here. (The released prompt's hint says "the average is calculated on axis=1", which is where the paper's
#   LLM took it from.)
def compute_mask(agent_states: AgentStates, supply_chain: SupplyChain, action_space: list):
    warehouse_list = supply_chain.get_warehouse_list()
    num_sku = len(agent_states)
    total_mask = np.ones((len(warehouse_list), num_sku, len(action_space)))
    for i, warehouse_name in enumerate(warehouse_list):  # [gap]
        capacity = supply_chain[warehouse_name, "capacity"]  # [gap]
        in_stock = agent_states[warehouse_name, "in_stock", "today", "all_skus"]
        history_demand_mean = np.average(agent_states[warehouse_name, "demand", "lookback", "all_skus"], axis=0)
        sku_volume = agent_states[warehouse_name, "volume", "today", "all_skus"]  # [gap]
        for a, action in enumerate(action_space):
            replenishment = history_demand_mean * action
            if np.sum(sku_volume * (in_stock + replenishment)) > capacity:
                total_mask[i, :, a] = 0
            # Add an additional condition to mask actions that bring in too much replenishment
            if action > 2:
                total_mask[i, :, a] = 0
            if agent_states.current_step < agent_states.durations * 0.3 and action < 0.5:
                total_mask[i, :, a] = 0
    return total_mask, {}
