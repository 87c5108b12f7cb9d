"""Chinese labels of the English enum values stored in the database."""

STREET_CLASS = {"demonstration": "示范街", "managed": "规范街", "commercial": "商业街",
                "other": "其他道路"}
ZONE_TYPE = {"morning_market": "早市", "night_market": "夜市", "seasonal_produce": "应季瓜果自产",
             "convenience_point": "便民服务点", "featured_outdoor": "特色外摆"}
ZONE_STATUS = {"draft": "草稿", "approved": "已批准", "retired": "已撤销"}
COMPONENT_STATE = {"intact": "完好", "damaged": "破损", "missing": "丢失", "occupied": "占用"}
FACILITY_KIND = {"farmers_market": "农贸市场", "public_toilet": "公厕", "ev_charging": "充电桩",
                 "parking": "停车场", "convenience_point": "便民服务点"}
CHANNEL = {"hotline_12345": "12345热线", "hotline_12319": "12319热线", "wechat": "微信",
           "patrol": "巡查上报", "open311": "Open311接口"}
CASE_STATUS = {"collected": "信息收集", "filed": "案卷建立", "dispatched": "任务派遣",
               "handled": "任务处理", "reported": "处理反馈", "closed": "核查结案",
               "evaluated": "综合评价", "rejected": "不予立案"}
OWNER_KIND = {"grid_worker": "网格员", "squad": "城管中队", "local_government": "属地政府"}
RAW_CRS = {"wgs84": "WGS84", "gcj02": "GCJ-02", "bd09": "BD-09", "cgcs2000": "CGCS2000"}
